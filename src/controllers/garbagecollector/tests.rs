//! The decision rules, table by table (reference/k8s-semantics.md §7), then the core against
//! the real apiserver core with the ReplicaSet controller (testkit's zero-latency host).

use std::time::Duration;

use serde_json::{json, Value};

use super::graph::OwnerRef;
use super::*;
use crate::controllers::replicaset::ReplicaSetController;
use crate::testkit::Driver;

fn owner(kind: &str, api_version: &str, uid: &str, block: bool) -> OwnerRef {
    OwnerRef {
        api_version: api_version.into(),
        kind: kind.into(),
        name: format!("o-{uid}"),
        uid: uid.into(),
        controller: false,
        block_owner_deletion: block,
    }
}

/// §7.3: attemptToDeleteItem's decision, given the owners' states.
#[test]
fn decisions_follow_attempt_to_delete_item() {
    use OwnerState::*;
    let del = |policy: &'static str, unblock: bool| Decision::Delete { policy, unblock };
    let rm = |uids: &[&str]| Decision::RemoveRefs(uids.iter().map(|u| u.to_string()).collect());
    // (owner states, has dependents, a dependent waits, finalizers, decision)
    type Case = (Vec<OwnerState>, bool, bool, Vec<&'static str>, Decision);
    let cases: Vec<Case> = vec![
        // No owners: never touched.
        (vec![], false, false, vec![], Decision::Keep),
        // A solid owner keeps the object.
        (vec![Solid], false, false, vec![], Decision::Keep),
        (vec![Solid, Solid], true, false, vec![], Decision::Keep),
        // ...and only the dangling or waiting references go (never the object).
        (vec![Solid, Dangling], false, false, vec![], rm(&["u1"])),
        (vec![Waiting, Solid], true, false, vec![], rm(&["u0"])),
        (
            vec![Dangling, Solid, Waiting],
            false,
            false,
            vec![],
            rm(&["u0", "u2"]),
        ),
        // Every owner gone: deleted in the background...
        (
            vec![Dangling],
            false,
            false,
            vec![],
            del("Background", false),
        ),
        (
            vec![Dangling, Dangling],
            true,
            false,
            vec![],
            del("Background", false),
        ),
        // ...unless a GC finalizer on it says otherwise.
        (
            vec![Dangling],
            false,
            false,
            vec!["orphan"],
            del("Orphan", false),
        ),
        (
            vec![Dangling],
            true,
            false,
            vec!["foregroundDeletion"],
            del("Foreground", false),
        ),
        (
            vec![Dangling],
            false,
            false,
            vec!["example.com/x"],
            del("Background", false),
        ),
        // An owner waits for it: with dependents of its own, foreground...
        (vec![Waiting], true, false, vec![], del("Foreground", false)),
        (
            vec![Waiting, Dangling],
            true,
            false,
            vec![],
            del("Foreground", false),
        ),
        // ...its own references unblocked first if a dependent waits too (cycle guard)...
        (vec![Waiting], true, true, vec![], del("Foreground", true)),
        // ...and without dependents, by its finalizers.
        (
            vec![Waiting],
            false,
            false,
            vec![],
            del("Background", false),
        ),
        (
            vec![Waiting],
            false,
            false,
            vec!["orphan"],
            del("Orphan", false),
        ),
    ];
    for (i, (states, deps, waits, fins, want)) in cases.into_iter().enumerate() {
        let refs: Vec<OwnerRef> = (0..states.len())
            .map(|k| owner("ReplicaSet", "apps/v1", &format!("u{k}"), true))
            .collect();
        let owners: Vec<(&OwnerRef, OwnerState)> = refs.iter().zip(states.clone()).collect();
        let fins: Vec<String> = fins.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            decide(&owners, deps, waits, &fins),
            want,
            "case {i}: {states:?}"
        );
    }
}

/// §7.3: an owner is dangling when absent or of another UID; waiting when it is being deleted
/// in the foreground; solid otherwise (an owner being deleted otherwise is still solid).
#[test]
fn owners_are_classified_by_their_live_object() {
    let r = owner("ReplicaSet", "apps/v1", "u1", true);
    let live = |uid: &str, meta: Value| {
        let mut o = json!({"metadata": {"name": "o-u1", "uid": uid}});
        for (k, v) in meta.as_object().unwrap() {
            o["metadata"][k] = v.clone();
        }
        o
    };
    let ts = "2026-01-01T00:00:00Z";
    let cases = [
        (None, OwnerState::Dangling),
        (Some(live("other", json!({}))), OwnerState::Dangling),
        (Some(live("u1", json!({}))), OwnerState::Solid),
        (
            Some(live(
                "u1",
                json!({"deletionTimestamp": ts, "finalizers": ["foregroundDeletion"]}),
            )),
            OwnerState::Waiting,
        ),
        (
            Some(live(
                "u1",
                json!({"deletionTimestamp": ts, "finalizers": ["orphan"]}),
            )),
            OwnerState::Solid,
        ),
        (
            Some(live("u1", json!({"finalizers": ["foregroundDeletion"]}))),
            OwnerState::Solid,
        ),
    ];
    for (i, (found, want)) in cases.into_iter().enumerate() {
        assert_eq!(classify(&r, found.as_ref()), want, "case {i}");
    }
}

/// §7.1: a namespaced owner is looked for in the dependent's namespace (an owner elsewhere is
/// absent); a cluster-scoped one without a namespace; a cluster-scoped object cannot have a
/// namespaced owner; an unknown kind cannot be verified.
#[test]
fn owner_lookups_follow_the_scope_rules() {
    let rs = registry::by_plural("apps", "replicasets").unwrap();
    let nodes = registry::by_plural("", "nodes").unwrap();
    let get = |resource, ns: Option<&str>| Lookup::Get {
        resource,
        namespace: ns.map(String::from),
    };
    let cases = [
        (
            Some("a"),
            owner("ReplicaSet", "apps/v1", "u", true),
            get(rs, Some("a")),
        ),
        // Another version of the group resolves to the same kind.
        (
            Some("a"),
            owner("ReplicaSet", "apps/v1beta2", "u", true),
            get(rs, Some("a")),
        ),
        (Some("a"), owner("Node", "v1", "u", false), get(nodes, None)),
        (None, owner("Node", "v1", "u", false), get(nodes, None)),
        (
            None,
            owner("ReplicaSet", "apps/v1", "u", true),
            Lookup::NamespacedOwnerOfClusterScoped,
        ),
        (
            Some("a"),
            owner("Widget", "example.com/v1", "u", true),
            Lookup::Unresolvable,
        ),
        // The right kind in the wrong group is not it.
        (
            Some("a"),
            owner("ReplicaSet", "v1", "u", true),
            Lookup::Unresolvable,
        ),
    ];
    for (i, (ns, r, want)) in cases.into_iter().enumerate() {
        assert_eq!(lookup(ns, &r), want, "case {i}");
    }
}

#[test]
fn the_absent_owner_cache_forgets_the_oldest() {
    let mut a = AbsentOwners::default();
    for i in 0..=ABSENT_CACHE {
        a.add(format!("k{i}"));
    }
    assert!(!a.has("k0"));
    assert!(a.has("k1") && a.has(&format!("k{ABSENT_CACHE}")));
}

// --- the core against the apiserver core ---

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).unwrap()
}

fn create(d: &mut Driver, group: &str, plural: &str, body: Value) -> Value {
    d.client(ApiOp::Create {
        resource: res(group, plural),
        namespace: Some("default".into()),
        body,
    })
    .unwrap()
}

fn get(d: &mut Driver, group: &str, plural: &str, name: &str) -> Option<Value> {
    d.client(ApiOp::Get {
        resource: res(group, plural),
        namespace: Some("default".into()),
        name: name.into(),
    })
    .ok()
}

fn delete(d: &mut Driver, group: &str, plural: &str, name: &str, policy: Option<&'static str>) {
    d.client(ApiOp::Delete {
        resource: res(group, plural),
        namespace: Some("default".into()),
        name: name.into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: policy,
    })
    .unwrap();
}

fn replica_set(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

/// Names of the pods (unscheduled: they go at once when deleted).
fn pods(d: &mut Driver) -> Vec<Value> {
    let (items, _) = futures::FutureExt::now_or_never(d.api.list(
        res("", "pods"),
        Some("default"),
        &Default::default(),
    ))
    .unwrap()
    .unwrap();
    items
}

fn cluster() -> Driver {
    let mut d = Driver::new(7);
    d.add(Box::new(ReplicaSetController::new()));
    d.add(Box::new(GarbageCollector::new()));
    d
}

/// The requests of the garbage collector, described (`delete pods default/web-x 200`).
fn gc_requests(d: &Driver) -> Vec<String> {
    d.log
        .iter()
        .filter(|(c, _, _)| c == "garbage-collector")
        .map(|(_, what, code)| format!("{what} {code}"))
        .collect()
}

#[test]
fn background_deletion_collects_the_pods_after_verifying_the_owner() {
    let mut d = cluster();
    create(&mut d, "apps", "replicasets", replica_set("web", 3));
    d.advance(Duration::from_secs(1));
    assert_eq!(pods(&mut d).len(), 3);
    assert!(
        gc_requests(&d).is_empty(),
        "nothing to collect: {:?}",
        gc_requests(&d)
    );
    delete(&mut d, "apps", "replicasets", "web", Some("Background"));
    d.advance(Duration::from_secs(1));
    assert!(pods(&mut d).is_empty());
    let reqs = gc_requests(&d);
    // The owner's delete event marks it absent: no lookup of it, one GET and one delete per
    // pod (with the pod's UID and resourceVersion as preconditions).
    assert_eq!(
        reqs.iter()
            .filter(|r| r.starts_with("get replicasets"))
            .count(),
        0,
        "{reqs:?}"
    );
    assert_eq!(
        reqs.iter()
            .filter(|r| r.starts_with("delete pods") && r.ends_with(" 200"))
            .count(),
        3,
        "{reqs:?}"
    );
}

#[test]
fn foreground_deletion_holds_the_owner_until_its_pods_are_gone() {
    // Without the collector, the owner waits with its finalizer (§7.2, §7.4).
    let mut d = Driver::new(8);
    d.add(Box::new(ReplicaSetController::new()));
    create(&mut d, "apps", "replicasets", replica_set("web", 2));
    d.advance(Duration::from_secs(1));
    delete(&mut d, "apps", "replicasets", "web", Some("Foreground"));
    d.advance(Duration::from_secs(5));
    let waiting = get(&mut d, "apps", "replicasets", "web").expect("held by its finalizer");
    assert!(waiting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        waiting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert_eq!(
        pods(&mut d).len(),
        2,
        "a deleting ReplicaSet neither adds nor removes"
    );
    // With the collector: the pods go first, then the owner.
    d.add(Box::new(GarbageCollector::new()));
    d.advance(Duration::from_secs(1));
    assert!(pods(&mut d).is_empty());
    assert!(get(&mut d, "apps", "replicasets", "web").is_none());
    let reqs = gc_requests(&d);
    let last_pod = reqs
        .iter()
        .rposition(|r| r.starts_with("delete pods"))
        .unwrap();
    let finalized = reqs
        .iter()
        .position(|r| r.starts_with("update replicasets default/web"))
        .unwrap();
    assert!(last_pod < finalized, "{reqs:?}");
    // (A conflict with the ReplicaSet controller's status write is retried.)
    assert_eq!(
        reqs.last().map(String::as_str),
        Some("update replicasets default/web 200"),
        "{reqs:?}"
    );
}

/// §7.2/§7.3: a foreground deletion goes down a chain: the owner's blocking dependent that
/// has dependents of its own is deleted in the foreground too, so the pods go first, then the
/// ReplicaSet, then the Deployment.
#[test]
fn foreground_deletion_goes_down_a_chain_of_owners() {
    let mut d = cluster();
    let deploy = create(
        &mut d,
        "apps",
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    let mut rs = replica_set("web-1", 2);
    rs["spec"]["selector"]["matchLabels"] = json!({"app": "web"});
    rs["spec"]["template"]["metadata"]["labels"] = json!({"app": "web"});
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "web", "uid": deploy["metadata"]["uid"], "controller": true,
        "blockOwnerDeletion": true}]);
    create(&mut d, "apps", "replicasets", rs);
    d.advance(Duration::from_secs(1));
    assert_eq!(pods(&mut d).len(), 2);
    assert!(gc_requests(&d).iter().all(|r| !r.starts_with("delete")));
    delete(&mut d, "apps", "deployments", "web", Some("Foreground"));
    d.advance(Duration::from_secs(2));
    assert!(pods(&mut d).is_empty());
    assert!(get(&mut d, "apps", "replicasets", "web-1").is_none());
    assert!(get(&mut d, "apps", "deployments", "web").is_none());
    let reqs = gc_requests(&d);
    let at = |prefix: &str| {
        reqs.iter()
            .position(|r| r.starts_with(prefix) && r.ends_with(" 200"))
            .unwrap_or_else(|| panic!("no {prefix}: {reqs:?}"))
    };
    let rs_deleted = at("delete replicasets default/web-1");
    let pod_deleted = at("delete pods");
    let rs_released = at("update replicasets default/web-1");
    let deploy_released = at("update deployments default/web");
    assert!(
        rs_deleted < pod_deleted && pod_deleted < rs_released && rs_released < deploy_released,
        "{reqs:?}"
    );
}

#[test]
fn orphan_deletion_releases_the_pods_and_nobody_adopts_them_back() {
    let mut d = cluster();
    create(&mut d, "apps", "replicasets", replica_set("web", 2));
    d.advance(Duration::from_secs(1));
    delete(&mut d, "apps", "replicasets", "web", Some("Orphan"));
    d.advance(Duration::from_secs(2));
    assert!(get(&mut d, "apps", "replicasets", "web").is_none());
    let left = pods(&mut d);
    assert_eq!(left.len(), 2);
    for p in &left {
        assert!(
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|r| r.is_empty()),
            "{p}"
        );
    }
    // A new ReplicaSet with the same selector adopts them: they are plain orphans.
    create(&mut d, "apps", "replicasets", replica_set("web", 2));
    d.advance(Duration::from_secs(1));
    let adopted = pods(&mut d);
    assert_eq!(adopted.len(), 2);
    assert!(adopted
        .iter()
        .all(|p| p["metadata"]["ownerReferences"][0]["name"] == "web"));
}

#[test]
fn a_dependent_with_a_live_owner_only_loses_the_dangling_reference() {
    let mut d = cluster();
    let a = create(&mut d, "apps", "replicasets", replica_set("a", 0));
    let b = create(&mut d, "apps", "replicasets", replica_set("b", 0));
    let refs = |owners: &[&Value]| -> Vec<Value> {
        owners
            .iter()
            .map(|o| {
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]})
            })
            .collect()
    };
    let pod = |name: &str, owners: Vec<Value>| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    };
    create(&mut d, "", "pods", pod("two", refs(&[&a, &b])));
    // A reference to an owner that never existed: collected when seen.
    let mut ghost = refs(&[&a]);
    ghost[0]["uid"] = json!("no-such-uid");
    create(&mut d, "", "pods", pod("ghost", ghost));
    d.advance(Duration::from_secs(1));
    assert!(get(&mut d, "", "pods", "ghost").is_none());
    delete(&mut d, "apps", "replicasets", "a", Some("Background"));
    d.advance(Duration::from_secs(1));
    let two = get(&mut d, "", "pods", "two").expect("b still owns it");
    assert_eq!(two["metadata"]["ownerReferences"], json!(refs(&[&b])));
    // An owner re-created under the same name is another object: its dependents go.
    delete(&mut d, "apps", "replicasets", "b", Some("Orphan"));
    d.advance(Duration::from_secs(1));
    let orphan = get(&mut d, "", "pods", "two").unwrap();
    assert!(
        orphan["metadata"]["ownerReferences"].is_null()
            || orphan["metadata"]["ownerReferences"] == json!([])
    );
    let b2 = create(&mut d, "apps", "replicasets", replica_set("b", 0));
    create(&mut d, "", "pods", pod("stale", refs(&[&b])));
    d.advance(Duration::from_secs(1));
    assert!(
        get(&mut d, "", "pods", "stale").is_none(),
        "its owner's uid is gone"
    );
    assert!(get(&mut d, "apps", "replicasets", "b").is_some());
    let _ = b2;
}

#[test]
fn failed_requests_are_retried_with_backoff() {
    let mut d = cluster();
    create(&mut d, "apps", "replicasets", replica_set("web", 2));
    d.advance(Duration::from_secs(1));
    d.fail_component_requests = 4;
    delete(&mut d, "apps", "replicasets", "web", Some("Background"));
    assert!(
        d.log
            .iter()
            .any(|(c, _, code)| c == "garbage-collector" && *code == 503),
        "{:?}",
        d.log
    );
    d.advance(Duration::from_secs(2));
    assert!(pods(&mut d).is_empty());
}
