//! The garbage collector's dependency graph (k8s: pkg/controller/garbagecollector/graph.go and
//! graph_builder.go): one node per object of the watched kinds, by UID, with its owner
//! references and its dependents. An owner a dependent names but the graph has not seen is a
//! *virtual* node made from the reference, to be confirmed (or found absent) by a live lookup.
//! Every change reports the nodes the collector must look at ([`Work`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// One entry of `metadata.ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub controller: bool,
    pub block_owner_deletion: bool,
}

impl OwnerRef {
    pub fn from_value(v: &Value) -> Option<OwnerRef> {
        let s = |k: &str| v[k].as_str().map(String::from);
        Some(OwnerRef {
            api_version: s("apiVersion")?,
            kind: s("kind")?,
            name: s("name")?,
            uid: s("uid")?,
            controller: v["controller"].as_bool().unwrap_or(false),
            block_owner_deletion: v["blockOwnerDeletion"].as_bool().unwrap_or(false),
        })
    }

    /// The API group of the owner's apiVersion (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// An object's owner references (malformed entries are left out).
pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(OwnerRef::from_value)
        .collect()
}

pub fn has_finalizer(obj: &Value, finalizer: &str) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(finalizer)))
}

/// The registered resource of an owner reference's kind: by group and kind, any version (k8s
/// resolves it through the RESTMapper). `None` for a kind gantry does not serve.
pub fn resolve(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// Which object a node stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Identity {
    pub fn resource(&self) -> Option<&'static ResourceInfo> {
        resolve(&self.api_version, &self.kind)
    }

    /// `pods default/web-x`, for logs.
    pub fn describe(&self) -> String {
        let what = self
            .resource()
            .map(|r| r.plural.to_string())
            .unwrap_or_else(|| self.kind.clone());
        match &self.namespace {
            Some(ns) => format!("{what} {ns}/{}", self.name),
            None => format!("{what} {}", self.name),
        }
    }
}

#[derive(Debug)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    /// UIDs of the nodes that name this one as an owner.
    pub dependents: BTreeSet<String>,
    /// False for a virtual node (known only from a dependent's reference).
    pub observed: bool,
    /// It has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer: its dependents go first.
    pub deleting_dependents: bool,
    /// Being deleted with the `orphan` finalizer.
    pub orphaning: bool,
}

/// What the collector must look at after a change: nodes for attemptToDelete, owners for
/// attemptToOrphan (UIDs, in the order found; the work queues drop repeats).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub delete: Vec<String>,
    pub orphan: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: BTreeMap<String, Node>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents whose reference to `uid` blocks its deletion (k8s: blockingDependents).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion)
            })
            .collect()
    }

    /// Whether a dependent of `uid` is itself deleting its dependents (foreground).
    pub fn a_dependent_deletes_dependents(&self, uid: &str) -> bool {
        self.nodes.get(uid).is_some_and(|n| {
            n.dependents
                .iter()
                .filter_map(|d| self.nodes.get(d))
                .any(|d| d.deleting_dependents)
        })
    }

    /// The UIDs of the observed nodes of `resource` (for a relist).
    pub fn observed_of(&self, resource: &ResourceInfo) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                n.observed
                    && n.identity
                        .resource()
                        .is_some_and(|r| (r.group, r.plural) == (resource.group, resource.plural))
            })
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// An object of a watched kind was added or changed (k8s: processGraphChanges, add and
    /// update events).
    pub fn upsert(&mut self, resource: &ResourceInfo, obj: &Value, work: &mut Work) {
        let meta = &obj["metadata"];
        let Some(uid) = meta["uid"].as_str().filter(|u| !u.is_empty()) else {
            return;
        };
        let uid = uid.to_string();
        let identity = Identity {
            api_version: resource.api_version(),
            kind: resource.kind.to_string(),
            namespace: meta["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(String::from),
            name: meta["name"].as_str().unwrap_or("").to_string(),
            uid: uid.clone(),
        };
        let owners = owner_refs(obj);
        let being_deleted = !meta["deletionTimestamp"].is_null();
        let deleting_dependents = being_deleted && has_finalizer(obj, FOREGROUND_FINALIZER);
        let orphaning = being_deleted && has_finalizer(obj, ORPHAN_FINALIZER);
        let (was_deleting_dependents, was_orphaning, old_owners) = match self.nodes.get_mut(&uid) {
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: identity.clone(),
                        owners: owners.clone(),
                        dependents: BTreeSet::new(),
                        observed: true,
                        being_deleted,
                        deleting_dependents,
                        orphaning,
                    },
                );
                (false, false, Vec::new())
            }
            Some(node) => {
                if !node.observed {
                    // A virtual node is seen at last. Dependents that named it by other
                    // coordinates have a reference that does not resolve: look at them again.
                    node.observed = true;
                    let stale: Vec<String> = node.dependents.iter().cloned().collect();
                    node.identity = identity.clone();
                    for d in stale {
                        let mismatch = self.nodes.get(&d).is_some_and(|dep| {
                            dep.owners.iter().any(|r| {
                                r.uid == uid
                                    && (r.kind != identity.kind
                                        || r.name != identity.name
                                        || resolve(&r.api_version, &r.kind).map(|x| x.group)
                                            != Some(resource.group))
                            })
                        });
                        if mismatch {
                            work.delete.push(d);
                        }
                    }
                }
                let node = self.nodes.get_mut(&uid).expect("present");
                let was = (node.deleting_dependents, node.orphaning);
                node.being_deleted |= being_deleted;
                node.deleting_dependents = deleting_dependents;
                node.orphaning = orphaning;
                let old = std::mem::replace(&mut node.owners, owners.clone());
                (was.0, was.1, old)
            }
        };
        if old_owners != owners {
            let removed: Vec<&OwnerRef> = old_owners
                .iter()
                .filter(|o| !owners.iter().any(|n| n.uid == o.uid))
                .collect();
            let added: Vec<OwnerRef> = owners
                .iter()
                .filter(|n| !old_owners.iter().any(|o| o.uid == n.uid))
                .cloned()
                .collect();
            // k8s: addUnblockedOwnersToDeleteQueue — an owner waiting for its dependents may
            // have been waiting for this one.
            for o in &old_owners {
                let unblocked = o.block_owner_deletion
                    && !owners
                        .iter()
                        .any(|n| n.uid == o.uid && n.block_owner_deletion);
                if unblocked
                    && self
                        .nodes
                        .get(&o.uid)
                        .is_some_and(|n| n.deleting_dependents)
                {
                    work.delete.push(o.uid.clone());
                }
            }
            for o in removed {
                self.drop_dependent(&o.uid, &uid);
            }
            self.add_to_owners(&uid, identity.namespace.as_deref(), &added, work);
        }
        // k8s: processTransitions.
        if orphaning && !was_orphaning {
            work.orphan.push(uid);
            return;
        }
        if deleting_dependents && !was_deleting_dependents {
            let node = &self.nodes[&uid];
            work.delete.extend(node.dependents.iter().cloned());
            work.delete.push(uid);
        }
    }

    /// `dependent` names these owners: record it with them, making virtual nodes for owners
    /// not seen yet (k8s: addDependentToOwners), which the collector then verifies.
    fn add_to_owners(
        &mut self,
        dependent: &str,
        namespace: Option<&str>,
        owners: &[OwnerRef],
        work: &mut Work,
    ) {
        for r in owners {
            match self.nodes.get_mut(&r.uid) {
                Some(owner) => {
                    owner.dependents.insert(dependent.to_string());
                }
                None => {
                    let namespaced =
                        resolve(&r.api_version, &r.kind).is_none_or(|res| res.namespaced);
                    self.nodes.insert(
                        r.uid.clone(),
                        Node {
                            identity: Identity {
                                api_version: r.api_version.clone(),
                                kind: r.kind.clone(),
                                namespace: namespace.filter(|_| namespaced).map(String::from),
                                name: r.name.clone(),
                                uid: r.uid.clone(),
                            },
                            owners: Vec::new(),
                            dependents: BTreeSet::from([dependent.to_string()]),
                            observed: false,
                            being_deleted: false,
                            deleting_dependents: false,
                            orphaning: false,
                        },
                    );
                    work.delete.push(r.uid.clone());
                }
            }
        }
    }

    /// Takes `dependent` off `owner`'s list; a virtual owner left without dependents goes.
    fn drop_dependent(&mut self, owner: &str, dependent: &str) {
        if let Some(o) = self.nodes.get_mut(owner) {
            o.dependents.remove(dependent);
            if !o.observed && o.dependents.is_empty() {
                self.nodes.remove(owner);
            }
        }
    }

    /// An object is gone: observed by an informer, or found absent by a live lookup (k8s: a
    /// delete event, real or virtual). Its dependents are looked at, and so are owners that
    /// wait for their dependents to go. Returns the node, if it was there.
    pub fn remove(&mut self, uid: &str, work: &mut Work) -> Option<Node> {
        let node = self.nodes.remove(uid)?;
        work.delete.extend(node.dependents.iter().cloned());
        for r in &node.owners {
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                work.delete.push(r.uid.clone());
            }
            self.drop_dependent(&r.uid, uid);
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        registry::by_plural(group, plural).unwrap()
    }

    fn rs(uid: &str, extra: Value) -> Value {
        let mut o =
            json!({"metadata": {"namespace": "ns", "name": format!("rs-{uid}"), "uid": uid}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                o["metadata"][k] = v;
            }
        }
        o
    }

    fn pod(uid: &str, owners: &[(&str, bool)]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(o, block)| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("rs-{o}"), "uid": o, "controller": true, "blockOwnerDeletion": block}))
            .collect();
        json!({"metadata": {"namespace": "ns", "name": format!("pod-{uid}"), "uid": uid, "ownerReferences": refs}})
    }

    #[test]
    fn dependents_make_virtual_owners_that_are_verified_then_observed() {
        let (pods, rss) = (res("", "pods"), res("apps", "replicasets"));
        let mut g = Graph::default();
        let mut w = Work::default();
        g.upsert(pods, &pod("p1", &[("r1", true)]), &mut w);
        assert_eq!(w.delete, ["r1"], "the unseen owner is verified");
        let r1 = g.get("r1").unwrap();
        assert!(!r1.observed);
        assert_eq!(r1.identity.describe(), "replicasets ns/rs-r1");
        let mut w = Work::default();
        g.upsert(pods, &pod("p2", &[("r1", true)]), &mut w);
        assert!(w.delete.is_empty(), "one verification per owner");
        let mut w = Work::default();
        g.upsert(rss, &rs("r1", json!({})), &mut w);
        assert_eq!(w, Work::default());
        assert!(g.get("r1").unwrap().observed);
        assert_eq!(g.get("r1").unwrap().dependents.len(), 2);
        assert_eq!(g.observed_of(rss), ["r1"]);
    }

    #[test]
    fn deletions_and_transitions_say_what_to_look_at() {
        let (pods, rss) = (res("", "pods"), res("apps", "replicasets"));
        let mut g = Graph::default();
        let mut w = Work::default();
        g.upsert(rss, &rs("r1", json!({})), &mut w);
        g.upsert(pods, &pod("p1", &[("r1", true)]), &mut w);
        g.upsert(pods, &pod("p2", &[("r1", false)]), &mut w);
        assert_eq!(w, Work::default());
        // Foreground deletion starts: every dependent, then the owner (§7.2).
        let fg = rs(
            "r1",
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}),
        );
        g.upsert(rss, &fg, &mut w);
        assert_eq!(w.delete, ["p1", "p2", "r1"]);
        let blocking: Vec<&str> = g
            .blocking_dependents("r1")
            .iter()
            .map(|n| n.identity.uid.as_str())
            .collect();
        assert_eq!(blocking, ["p1"]);
        // The same state again is no transition.
        let mut w = Work::default();
        g.upsert(rss, &fg, &mut w);
        assert_eq!(w, Work::default());
        // A blocking dependent unblocks: the waiting owner is looked at.
        g.upsert(pods, &pod("p1", &[("r1", false)]), &mut w);
        assert_eq!(w.delete, ["r1"]);
        // A dependent goes: the waiting owner again.
        let mut w = Work::default();
        assert!(g.remove("p2", &mut w).is_some());
        assert_eq!(w.delete, ["r1"]);
        // The owner goes: its dependents.
        let mut w = Work::default();
        g.remove("r1", &mut w);
        assert_eq!(w.delete, ["p1"]);
        assert!(g.remove("r1", &mut w).is_none());
        // Orphaning starts.
        let mut w = Work::default();
        let orphan = rs(
            "r2",
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"]}),
        );
        g.upsert(rss, &orphan, &mut w);
        assert_eq!(w.orphan, ["r2"]);
    }

    #[test]
    fn changed_references_move_the_dependent_between_owners() {
        let (pods, rss) = (res("", "pods"), res("apps", "replicasets"));
        let mut g = Graph::default();
        let mut w = Work::default();
        g.upsert(rss, &rs("r1", json!({})), &mut w);
        g.upsert(pods, &pod("p1", &[("r1", true), ("r9", false)]), &mut w);
        assert_eq!(w.delete, ["r9"]);
        g.upsert(pods, &pod("p1", &[("r1", true)]), &mut w);
        assert!(
            g.get("r9").is_none(),
            "a virtual owner without dependents goes"
        );
        assert!(g.get("r1").unwrap().dependents.contains("p1"));
        g.upsert(pods, &pod("p1", &[]), &mut w);
        assert!(g.get("r1").unwrap().dependents.is_empty());
    }
}
