//! The garbage collector in `gantry server`, with the real kubectl (reference §7): cascading
//! deletes in the background, the foreground and as orphans, and a dependent that keeps one
//! of two owners. No node: pods stay Pending and go at once when deleted.

mod common;

use std::time::Duration;

use common::{wait_for, GantryServer};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn replica_set(name: &str, replicas: u32, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {labels}}}\n  template:\n    metadata:\n      labels: {{app: {labels}}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
    )
}

fn apply(s: &GantryServer, name: &str, yaml: &str) {
    let file = s.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    s.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn json(s: &GantryServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all)).unwrap()
}

fn pods(s: &GantryServer, app: &str) -> Vec<Value> {
    json(s, &["get", "pods", "-l", &format!("app={app}")])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn exists(s: &GantryServer, what: &[&str]) -> Option<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json", "--ignore-not-found"]);
    let out = s.kubectl_ok(&args);
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

fn wait_pods(s: &GantryServer, app: &str, n: usize) -> Vec<Value> {
    wait_for(WAIT, &format!("{n} pods app={app}"), || {
        let p = pods(s, app);
        (p.len() == n).then_some(p)
    })
}

fn owner_names(pod: &Value) -> Vec<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn background_deletion_removes_the_pods_and_a_second_owner_keeps_its_dependent() {
    let s = GantryServer::start();
    apply(&s, "bg", &replica_set("bg", 3, "bg"));
    wait_pods(&s, "bg", 3);
    // kubectl's default cascade is background: the ReplicaSet goes at once, its pods after.
    s.kubectl_ok(&["delete", "rs", "bg"]);
    wait_pods(&s, "bg", 0);

    // A pod with two owners (neither its controller): deleting one leaves the other.
    apply(&s, "a", &replica_set("a", 0, "nobody-a"));
    apply(&s, "b", &replica_set("b", 0, "nobody-b"));
    let uid = |name: &str| {
        json(&s, &["get", "rs", name])["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (uid("a"), uid("b"));
    apply(
        &s,
        "shared",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shared\n  labels: {{app: shared}}\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: a, uid: {a}, blockOwnerDeletion: true}}\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: b, uid: {b}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
        ),
    );
    s.kubectl_ok(&["delete", "rs", "a"]);
    let pod = wait_for(WAIT, "the reference to a to go", || {
        let p = exists(&s, &["pod", "shared"]).expect("the pod must live on");
        (owner_names(&p) == ["b"]).then_some(p)
    });
    assert!(pod["metadata"]["deletionTimestamp"].is_null());
    std::thread::sleep(Duration::from_secs(1));
    assert!(exists(&s, &["pod", "shared"]).is_some(), "b is alive");
    // b goes too: now the pod has no owner left and is collected.
    s.kubectl_ok(&["delete", "rs", "b"]);
    wait_for(WAIT, "the pod to be collected", || {
        exists(&s, &["pod", "shared"]).is_none().then_some(())
    });
}

#[test]
fn foreground_deletion_keeps_the_owner_until_its_pods_are_gone() {
    let s = GantryServer::start();
    apply(&s, "fg", &replica_set("fg", 2, "fg"));
    let before = wait_pods(&s, "fg", 2);
    // One pod is held by a finalizer of someone else's: the owner must wait for it.
    let held = before[0]["metadata"]["name"].as_str().unwrap().to_string();
    s.kubectl_ok(&[
        "patch",
        "pod",
        &held,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.kubectl_ok(&["delete", "rs", "fg", "--cascade=foreground", "--wait=false"]);
    wait_for(WAIT, "the other pod to go", || {
        let p = pods(&s, "fg");
        (p.len() == 1 && p[0]["metadata"]["deletionTimestamp"].is_string()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let rs = exists(&s, &["rs", "fg"]).expect("the owner waits for its pods");
    assert!(rs["metadata"]["deletionTimestamp"].is_string(), "{rs}");
    assert_eq!(
        rs["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    // The last pod goes: then the owner.
    s.kubectl_ok(&[
        "patch",
        "pod",
        &held,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for(WAIT, "the ReplicaSet to go", || {
        exists(&s, &["rs", "fg"]).is_none().then_some(())
    });
    assert!(pods(&s, "fg").is_empty());
}

#[test]
fn orphan_deletion_leaves_the_pods_without_an_owner() {
    let s = GantryServer::start();
    apply(&s, "or", &replica_set("or", 2, "or"));
    wait_pods(&s, "or", 2);
    // kubectl waits for the ReplicaSet to be gone: the collector has released its pods.
    s.kubectl_ok(&["delete", "rs", "or", "--cascade=orphan", "--timeout=20s"]);
    assert!(exists(&s, &["rs", "or"]).is_none());
    std::thread::sleep(Duration::from_secs(1));
    let left = wait_pods(&s, "or", 2);
    for p in &left {
        assert!(owner_names(p).is_empty(), "{p}");
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{p}");
    }
}
