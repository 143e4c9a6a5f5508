//! Invariants the simulator checks on every change, whatever the scenario: the safety
//! properties Kubernetes promises even under faults. A violation fails the run.
//!
//! * a pod, once bound, never moves to another node (k8s: nodeName is immutable once set);
//! * the scheduler never binds a pod to a node whose allocatable cpu, memory or pod count the
//!   requests of the node's non-terminal pods would then exceed (NodeResourcesFit);
//! * no stale write wins: an update that names a resourceVersion succeeds only if that is the
//!   object's current one (optimistic concurrency);
//! * the garbage collector never deletes an object that has a live owner: one that exists with
//!   the referenced UID and is not itself waiting for its dependents (k8s-semantics §9.12);
//! * an owner deleted in the foreground goes only once no dependent with
//!   `blockOwnerDeletion: true` names it (§9.12).

use std::collections::{BTreeMap, BTreeSet};

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
    /// Owner uid → the objects (kind/namespace/name) whose reference to it blocks its deletion.
    blocking: BTreeMap<String, BTreeSet<String>>,
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

    /// Any object changed (`new` is `None`: deleted), of kind `kind`: keeps the index of
    /// blocking references, and checks that an owner deleted in the foreground had none left.
    pub fn owned(
        &mut self,
        kind: &str,
        prev: Option<&Value>,
        new: Option<&Value>,
        what: impl Fn() -> String,
    ) {
        let blocking_refs = |o: Option<&Value>| -> Vec<String> {
            o.and_then(|o| o["metadata"]["ownerReferences"].as_array())
                .into_iter()
                .flatten()
                .filter(|r| r["blockOwnerDeletion"] == true)
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        };
        let (old_refs, new_refs) = (blocking_refs(prev), blocking_refs(new));
        if old_refs != new_refs {
            let id = format!(
                "{kind} {}",
                key(prev.or(new).expect("a change has an object"))
            );
            for uid in old_refs {
                if let Some(set) = self.blocking.get_mut(&uid) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.blocking.remove(&uid);
                    }
                }
            }
            for uid in new_refs {
                self.blocking.entry(uid).or_default().insert(id.clone());
            }
        }
        let (Some(gone), None) = (prev, new) else {
            return;
        };
        let foreground = gone["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion"));
        let uid = gone["metadata"]["uid"].as_str().unwrap_or("");
        if let Some(left) = self.blocking.get(uid).filter(|_| foreground) {
            self.violations.push(format!(
                "{}: {kind} {} was deleted in the foreground while dependents blocking it remain: {}",
                what(),
                key(gone),
                left.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }

    /// The garbage collector deletes `object`, whose owners are looked up by `owner_of`
    /// (reference → the live owner, if any): it must not have a live one.
    pub fn collected(
        &mut self,
        what: &str,
        object: &Value,
        owner_of: impl Fn(&Value) -> Option<Value>,
    ) {
        for r in object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(owner) = owner_of(r) else { continue };
            let waiting = !owner["metadata"]["deletionTimestamp"].is_null()
                && owner["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion"));
            if owner["metadata"]["uid"] == r["uid"] && !waiting {
                self.violations.push(format!(
                    "{what}: the garbage collector deleted {} while its owner {} {} lives",
                    key(object),
                    r["kind"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                ));
            }
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

    fn obj(name: &str, uid: &str, owners: Value, finalizers: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": uid,
                            "ownerReferences": owners, "finalizers": finalizers}})
    }

    #[test]
    fn a_foreground_owner_goes_only_after_its_blocking_dependents() {
        let rs = obj("web", "r1", json!([]), json!(["foregroundDeletion"]));
        let dep = |block: bool| {
            obj(
                "p",
                "p1",
                json!([{"kind": "ReplicaSet", "name": "web", "uid": "r1", "blockOwnerDeletion": block}]),
                json!([]),
            )
        };
        let steps: Vec<(&str, Option<Value>, Option<Value>, usize)> = vec![
            ("ReplicaSet", None, Some(rs.clone()), 0),
            ("Pod", None, Some(dep(true)), 0),
            // Deleted with a blocking dependent left: a violation.
            ("ReplicaSet", Some(rs.clone()), None, 1),
            // Unblocked, then the owner goes: fine.
            ("Pod", Some(dep(true)), Some(dep(false)), 1),
            ("ReplicaSet", Some(rs.clone()), None, 1),
            ("Pod", Some(dep(false)), Some(dep(true)), 1),
            // Deleted in the background (no finalizer): not checked.
            (
                "ReplicaSet",
                Some(obj("web", "r1", json!([]), json!([]))),
                None,
                1,
            ),
            ("Pod", Some(dep(true)), None, 1),
            ("ReplicaSet", Some(rs.clone()), None, 1),
        ];
        let mut inv = Invariants::default();
        for (i, (kind, prev, new, want)) in steps.into_iter().enumerate() {
            inv.owned(kind, prev.as_ref(), new.as_ref(), || format!("step {i}"));
            assert_eq!(inv.violations.len(), want, "step {i}: {:?}", inv.violations);
        }
        assert!(inv.violations[0].contains("dependents blocking it remain: Pod default/p"));
    }

    #[test]
    fn the_collector_never_deletes_what_a_live_owner_holds() {
        let pod = obj(
            "p",
            "p1",
            json!([{"kind": "ReplicaSet", "name": "web", "uid": "r1"}]),
            json!([]),
        );
        let owner = |uid: &str, fins: Value, deleting: bool| {
            let mut o = obj("web", uid, json!([]), fins);
            if deleting {
                o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            Some(o)
        };
        let cases = [
            (None, 0),
            (owner("other", json!([]), false), 0),
            (owner("r1", json!(["foregroundDeletion"]), true), 0),
            (owner("r1", json!([]), false), 1),
            (owner("r1", json!(["orphan"]), true), 1),
        ];
        for (i, (live, want)) in cases.into_iter().enumerate() {
            let mut inv = Invariants::default();
            inv.collected("delete pods default/p", &pod, |_| live.clone());
            assert_eq!(inv.violations.len(), want, "case {i}");
        }
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
