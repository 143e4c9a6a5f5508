//! Invariants the simulator checks on every change, whatever the scenario: the safety
//! properties Kubernetes promises even under faults. A violation fails the run.
//!
//! * a pod, once bound, never moves to another node (k8s: nodeName is immutable once set);
//! * the scheduler never binds a pod to a node whose allocatable cpu, memory or pod count the
//!   requests of the node's non-terminal pods would then exceed (NodeResourcesFit);
//! * no stale write wins: an update that names a resourceVersion succeeds only if that is the
//!   object's current one (optimistic concurrency).

use std::collections::BTreeMap;

use gantry::api::quantity;
use serde_json::Value;

/// cpu (millicores), memory (milli-bytes, as `quantity::parse` counts) and pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Amounts {
    cpu: i128,
    memory: i128,
    pods: i128,
}

impl Amounts {
    fn exceeds(&self, cap: &Amounts) -> Option<&'static str> {
        if self.cpu > cap.cpu {
            Some("cpu")
        } else if self.memory > cap.memory {
            Some("memory")
        } else if self.pods > cap.pods {
            Some("pods")
        } else {
            None
        }
    }
}

fn amount(v: &Value, name: &str) -> i128 {
    v.get(name)
        .and_then(Value::as_str)
        .and_then(quantity::parse)
        .unwrap_or(0)
}

/// What a pod asks of its node: the sum of its containers' requests, or the largest init
/// container's if that is more (k8s: the scheduler's pod resource computation).
fn requests(pod: &Value) -> Amounts {
    let of = |c: &Value| {
        let r = &c["resources"]["requests"];
        (amount(r, "cpu"), amount(r, "memory"))
    };
    let mut total = Amounts {
        pods: 1,
        ..Default::default()
    };
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let (cpu, memory) = of(c);
        total.cpu += cpu;
        total.memory += memory;
    }
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (cpu, memory) = of(c);
        total.cpu = total.cpu.max(cpu);
        total.memory = total.memory.max(memory);
    }
    total
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

fn key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

#[derive(Debug, Default)]
pub struct Invariants {
    allocatable: BTreeMap<String, Amounts>,
    /// Non-terminal pods bound to a node: key → (node, requests).
    placed: BTreeMap<String, (String, Amounts)>,
    /// The sum of `placed` per node.
    used: BTreeMap<String, Amounts>,
    /// Every binding seen: pod uid → node.
    bound: BTreeMap<String, String>,
    pub violations: Vec<String>,
}

impl Invariants {
    /// A node changed (or was deleted: `new` is `None`).
    pub fn node(&mut self, prev: Option<&Value>, new: Option<&Value>) {
        match new {
            Some(n) => {
                let a = &n["status"]["allocatable"];
                let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.allocatable.insert(
                    name,
                    Amounts {
                        cpu: amount(a, "cpu"),
                        memory: amount(a, "memory"),
                        pods: amount(a, "pods") / 1000,
                    },
                );
            }
            None => {
                if let Some(p) = prev {
                    self.allocatable
                        .remove(p["metadata"]["name"].as_str().unwrap_or(""));
                }
            }
        }
    }

    /// A pod changed; `what` says when, for a message (formatted only if there is one).
    pub fn pod(&mut self, prev: Option<&Value>, new: Option<&Value>, what: impl Fn() -> String) {
        let Some(pod) = new else {
            if let Some(p) = prev {
                self.unplace(&key(p));
            }
            return;
        };
        let k = key(pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let Some(node) = node_name(pod) else {
            self.unplace(&k);
            return;
        };
        match self.bound.get(&uid) {
            Some(first) if first != node => self.violations.push(format!(
                "{}: pod {k} (uid {uid}) was bound to {first} and is now bound to {node}",
                what()
            )),
            Some(_) => {}
            None => {
                self.bound.insert(uid, node.to_string());
            }
        }
        if terminal(pod) {
            self.unplace(&k);
            return;
        }
        // A binding: the pod existed without a node. (A pod created with spec.nodeName set
        // bypasses the scheduler; its kubelet's admission is what refuses it.)
        let newly_bound = prev.is_some_and(|p| node_name(p).is_none());
        self.place(&k, node, requests(pod));
        if newly_bound {
            if let Some(cap) = self.allocatable.get(node) {
                let used = self.used(node);
                if let Some(r) = used.exceeds(cap) {
                    self.violations.push(format!(
                        "{}: binding pod {k} to {node} exceeds its allocatable {r} ({} requested of {})",
                        what(),
                        match r {
                            "cpu" => format!("{}m", used.cpu),
                            "memory" => format!("{}", used.memory / 1000),
                            _ => format!("{}", used.pods),
                        },
                        match r {
                            "cpu" => format!("{}m", cap.cpu),
                            "memory" => format!("{}", cap.memory / 1000),
                            _ => format!("{}", cap.pods),
                        }
                    ));
                }
            }
        }
    }

    fn used(&self, node: &str) -> Amounts {
        self.used.get(node).copied().unwrap_or_default()
    }

    fn place(&mut self, key: &str, node: &str, r: Amounts) {
        self.unplace(key);
        let sum = self.used.entry(node.to_string()).or_default();
        sum.cpu += r.cpu;
        sum.memory += r.memory;
        sum.pods += r.pods;
        self.placed.insert(key.to_string(), (node.to_string(), r));
    }

    fn unplace(&mut self, key: &str) {
        if let Some((node, r)) = self.placed.remove(key) {
            let sum = self.used.entry(node).or_default();
            sum.cpu -= r.cpu;
            sum.memory -= r.memory;
            sum.pods -= r.pods;
        }
    }

    /// An update naming `sent` as its resourceVersion, to an object whose current version was
    /// `current`, has been answered; `succeeded` says whether it was applied.
    pub fn update(
        &mut self,
        what: &str,
        sent: Option<&str>,
        current: Option<&str>,
        succeeded: bool,
    ) {
        if let (Some(sent), true) = (sent.filter(|s| !s.is_empty()), succeeded) {
            if current != Some(sent) {
                self.violations.push(format!(
                    "{what}: a write based on resourceVersion {sent} succeeded over version {}",
                    current.unwrap_or("(none)")
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, pods: &str) -> Value {
        json!({"metadata": {"name": name},
               "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods}}})
    }

    fn pod(name: &str, uid: &str, node: &str, cpu: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": uid},
               "spec": {"nodeName": node, "containers": [
                   {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
               "status": {"phase": phase}})
    }

    /// Steps of (pod before, pod after), and how many violations there are after each.
    #[test]
    fn bindings_are_checked_against_allocatable_and_never_move() {
        let mut inv = Invariants::default();
        inv.node(None, Some(&node("n1", "1", "3")));
        inv.node(None, Some(&node("n2", "4", "110")));
        let p = |n: &str, u: &str, node: &str, cpu: &str| pod(n, u, node, cpu, "Pending");
        let steps: Vec<(Option<Value>, Option<Value>, usize)> = vec![
            (None, Some(p("a", "1", "", "600m")), 0),
            (
                Some(p("a", "1", "", "600m")),
                Some(p("a", "1", "n1", "600m")),
                0,
            ),
            // 600m + 500m > 1 cpu
            (None, Some(p("b", "2", "", "500m")), 0),
            (
                Some(p("b", "2", "", "500m")),
                Some(p("b", "2", "n1", "500m")),
                1,
            ),
            // a finished pod frees its requests
            (
                Some(p("a", "1", "n1", "600m")),
                Some(pod("a", "1", "n1", "600m", "Succeeded")),
                1,
            ),
            (None, Some(p("c", "3", "n1", "100m")), 1),
            // a bound pod never moves
            (
                Some(p("c", "3", "n1", "100m")),
                Some(p("c", "3", "n2", "100m")),
                2,
            ),
            // deleting frees the room; a new pod with the same name is a new uid
            (Some(p("c", "3", "n2", "100m")), None, 2),
            (None, Some(p("c", "4", "n1", "100m")), 2),
        ];
        for (i, (prev, new, want)) in steps.into_iter().enumerate() {
            inv.pod(prev.as_ref(), new.as_ref(), || format!("step {i}"));
            assert_eq!(inv.violations.len(), want, "step {i}: {:?}", inv.violations);
        }
        assert!(
            inv.violations[0].contains("exceeds its allocatable cpu (1100m requested of 1000m)"),
            "{}",
            inv.violations[0]
        );
        assert!(inv.violations[1].contains("bound to n1 and is now bound to n2"));
    }

    #[test]
    fn stale_writes_must_fail() {
        let cases = [
            (Some("5"), Some("5"), true, 0),
            (Some("4"), Some("5"), false, 0),
            (Some("4"), Some("5"), true, 1),
            (None, Some("5"), true, 0), // unconditional
            (Some(""), Some("5"), true, 0),
        ];
        for (i, (sent, current, ok, want)) in cases.into_iter().enumerate() {
            let mut inv = Invariants::default();
            inv.update("update pods default/a", sent, current, ok);
            assert_eq!(inv.violations.len(), want, "case {i}");
        }
    }
}
