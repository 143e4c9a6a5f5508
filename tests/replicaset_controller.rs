//! The ReplicaSet controller core driven against the real apiserver core (zero-latency
//! test host): k8s-semantics.md §1.

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::{ListOptions, Part};
use gantry::component::{ApiOp, Component, Effect, Input};
use gantry::controllers::replicaset::{compare_for_deletion, ReplicaSetController};
use gantry::testkit::Driver;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

fn rs_body(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

fn create(d: &mut Driver, plural: &str, body: Value) -> Value {
    let resource = by_plural(if plural == "replicasets" { "apps" } else { "" }, plural).unwrap();
    d.client(ApiOp::Create {
        resource,
        namespace: Some("default".into()),
        body,
    })
    .unwrap()
}

fn pods(d: &Driver) -> Vec<Value> {
    let res = by_plural("", "pods").unwrap();
    futures::FutureExt::now_or_never(d.api.list(res, Some("default"), &ListOptions::default()))
        .unwrap()
        .unwrap()
        .0
}

fn get_rs(d: &Driver, name: &str) -> Value {
    futures::FutureExt::now_or_never(d.api.get(
        by_plural("apps", "replicasets").unwrap(),
        Some("default"),
        name,
    ))
    .unwrap()
    .unwrap()
}

fn scale(d: &mut Driver, name: &str, replicas: i64) {
    let mut rs = get_rs(d, name);
    rs["spec"]["replicas"] = json!(replicas);
    d.client(ApiOp::Update {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        name: name.into(),
        body: rs,
        part: Part::Main,
    })
    .unwrap();
}

fn creates_per_sync(d: &Driver) -> Vec<String> {
    d.log
        .iter()
        .filter(|(who, _, _)| who == "replicaset-controller")
        .map(|(_, what, code)| format!("{what} {code}"))
        .collect()
}

#[test]
fn scales_up_in_slow_start_batches_and_reports_status() {
    let mut d = Driver::new(1);
    d.add(Box::new(ReplicaSetController::new()));
    create(&mut d, "replicasets", rs_body("web", 10));
    let all = pods(&d);
    assert_eq!(all.len(), 10);
    for p in &all {
        assert!(p["metadata"]["name"].as_str().unwrap().starts_with("web-"));
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["controller"].as_bool()),
            (Some("ReplicaSet"), Some(true))
        );
    }
    let rs = get_rs(&d, "web");
    assert_eq!(rs["status"]["replicas"], 10);
    assert_eq!(rs["status"]["observedGeneration"], 1);
    assert_eq!(rs["status"]["readyReplicas"], 0);
    // Ten creates, then the status (batch sizes: slow_start_doubles_batches_within_the_burst_limit).
    let log = creates_per_sync(&d);
    let creates = log.iter().filter(|l| l.starts_with("create pods")).count();
    assert_eq!(creates, 10, "{log:#?}");
    assert_eq!(
        log.last().unwrap(),
        "update replicasets/status default/web 200"
    );
}

#[test]
fn a_failed_batch_skips_the_rest_and_retries_with_backoff() {
    let mut d = Driver::new(2);
    d.add(Box::new(ReplicaSetController::new()));
    create(&mut d, "replicasets", rs_body("db", 0));
    // The controller's first request (the first create, a batch of one) fails: the sync
    // stops after that batch and reports ReplicaFailure.
    d.fail_component_requests = 1;
    let before = creates_per_sync(&d).len();
    scale(&mut d, "db", 5);
    let log = creates_per_sync(&d)[before..].to_vec();
    // The failed batch ended the slow start: the next request is the ReplicaFailure status.
    assert_eq!(log[0], "create pods default/db- 503", "{log:#?}");
    assert_eq!(
        log[1], "update replicasets/status default/db 200",
        "{log:#?}"
    );
    // That status write is itself a change to the ReplicaSet, so the key is synced again at
    // once (as upstream's updateRS handler does) and this time all five are created.
    d.advance(Duration::from_secs(1));
    assert_eq!(pods(&d).len(), 5);
    assert!(get_rs(&d, "db")["status"]
        .get("conditions")
        .is_none_or(|c| c.as_array().unwrap().is_empty()));
}

#[test]
fn scales_down_deleting_the_least_valuable_pods_first() {
    let mut d = Driver::new(3);
    d.add(Box::new(ReplicaSetController::new()));
    create(&mut d, "replicasets", rs_body("web", 4));
    let names: Vec<String> = pods(&d)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // Bind three of them; make two of those Running and Ready.
    for (i, name) in names.iter().take(3).enumerate() {
        d.client(ApiOp::Bind {
            namespace: "default".into(),
            name: name.clone(),
            node: "n1".into(),
        })
        .unwrap();
        if i < 2 {
            let mut p = futures::FutureExt::now_or_never(d.api.get(
                by_plural("", "pods").unwrap(),
                Some("default"),
                name,
            ))
            .unwrap()
            .unwrap();
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]);
            d.client(ApiOp::Update {
                resource: by_plural("", "pods").unwrap(),
                namespace: Some("default".into()),
                name: name.clone(),
                body: p,
                part: Part::Status,
            })
            .unwrap();
        }
    }
    scale(&mut d, "web", 2);
    // The bound pod is deleted gracefully: it stays, terminating, until its kubelet is done.
    let left: Vec<String> = pods(&d)
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // The unbound pod and the bound-but-Pending pod went; the two Running, Ready ones stay.
    let mut want = names[..2].to_vec();
    want.sort();
    assert_eq!(left, want);
    assert_eq!(get_rs(&d, "web")["status"]["readyReplicas"], 2);
}

#[test]
fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let mut d = Driver::new(4);
    d.add(Box::new(ReplicaSetController::new()));
    let orphan = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "x"}]}});
    create(&mut d, "pods", orphan);
    let rs = create(&mut d, "replicasets", rs_body("web", 2));
    let all = pods(&d);
    assert_eq!(all.len(), 2, "the orphan counts as one of the two");
    let stray = all
        .iter()
        .find(|p| p["metadata"]["name"] == "stray")
        .unwrap();
    assert_eq!(
        stray["metadata"]["ownerReferences"][0]["uid"],
        rs["metadata"]["uid"]
    );
    assert!(
        d.log
            .iter()
            .any(|(who, what, _)| who == "replicaset-controller"
                && what == "get replicasets default/web"),
        "adoption is confirmed by an uncached GET"
    );

    // Relabel the stray pod: it is released and replaced.
    let mut p = all
        .iter()
        .find(|p| p["metadata"]["name"] == "stray")
        .unwrap()
        .clone();
    p["metadata"]["labels"]["app"] = json!("other");
    d.client(ApiOp::Update {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "stray".into(),
        body: p,
        part: Part::Main,
    })
    .unwrap();
    let all = pods(&d);
    assert_eq!(all.len(), 3);
    let stray = all
        .iter()
        .find(|p| p["metadata"]["name"] == "stray")
        .unwrap();
    assert!(
        stray["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "released: {stray}"
    );
    assert_eq!(get_rs(&d, "web")["status"]["replicas"], 2);
}

#[test]
fn expectations_hold_back_a_second_sync_until_the_creates_are_seen() {
    // Drive the core by hand: its creates succeed, but their pod events are not delivered.
    let now = gantry::time::Time::from_secs(1_000);
    let (mut c, mut out, rs) = primed(3, now);
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let rs_res = by_plural("apps", "replicasets").unwrap();
    assert_eq!(
        answer_all(&mut c, &mut out, now),
        vec![1, 2],
        "slow start: 1, then 2"
    );
    // A change to the ReplicaSet triggers a sync; without the pods' Added events the
    // expectations are unsatisfied and nothing more is created.
    let mut rs2 = rs.clone();
    rs2["metadata"]["labels"] = json!({"touched": "yes"});
    let ev = gantry::apiserver::ApiEvent::new(gantry::apiserver::EventType::Modified, rs2, 9);
    c.step(
        now,
        Input::Watched {
            resource: rs_res,
            event: ev,
        },
        &mut rng,
        &mut out,
    );
    assert!(answer_all(&mut c, &mut out, now).iter().all(|n| *n == 0));
    // After the 5-minute expectations timeout, the controller trusts its cache again.
    let later = now + Duration::from_secs(301);
    let ev =
        gantry::apiserver::ApiEvent::new(gantry::apiserver::EventType::Modified, rs.clone(), 10);
    c.step(
        later,
        Input::Watched {
            resource: rs_res,
            event: ev,
        },
        &mut rng,
        &mut out,
    );
    assert_eq!(
        answer_all(&mut c, &mut out, later),
        vec![1, 2],
        "a new slow start for the missing three"
    );
}

/// Answers every request of a hand-driven core successfully (echoing the body) until it is
/// quiet; returns the number of creates in each round of requests (a slow-start batch).
fn answer_all(
    c: &mut ReplicaSetController,
    out: &mut Vec<Effect>,
    now: gantry::time::Time,
) -> Vec<usize> {
    let mut rounds = Vec::new();
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    loop {
        let requests: Vec<(u64, ApiOp)> = out
            .drain(..)
            .filter_map(|e| match e {
                Effect::Api { id, op } => Some((id, op)),
                _ => None,
            })
            .collect();
        if requests.is_empty() {
            return rounds;
        }
        let creates = requests
            .iter()
            .filter(|(_, op)| matches!(op, ApiOp::Create { .. }))
            .count();
        if creates > 0 {
            rounds.push(creates);
        }
        for (id, op) in requests {
            let result = match &op {
                ApiOp::Create { body, .. } | ApiOp::Update { body, .. } => {
                    Ok(std::sync::Arc::new(body.clone()))
                }
                other => panic!("unexpected {other:?}"),
            };
            c.step(now, Input::ApiResult { id, result }, &mut rng, out);
        }
    }
}

/// A controller that has listed one ReplicaSet (and no pods).
fn primed(replicas: i64, now: gantry::time::Time) -> (ReplicaSetController, Vec<Effect>, Value) {
    let mut c = ReplicaSetController::new();
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let mut out = Vec::new();
    let mut rs = rs_body("web", replicas);
    rs["metadata"]["uid"] = json!("rs-uid");
    rs["metadata"]["resourceVersion"] = json!("5");
    rs["metadata"]["generation"] = json!(1);
    let (rs_res, pod_res) = (
        by_plural("apps", "replicasets").unwrap(),
        by_plural("", "pods").unwrap(),
    );
    c.step(
        now,
        Input::Listed {
            resource: pod_res,
            items: vec![],
            revision: 5,
        },
        &mut rng,
        &mut out,
    );
    c.step(
        now,
        Input::Listed {
            resource: rs_res,
            items: vec![rs.clone()],
            revision: 5,
        },
        &mut rng,
        &mut out,
    );
    (c, out, rs)
}

#[test]
fn slow_start_doubles_batches_within_the_burst_limit() {
    // k8s: BurstReplicas 500; batches 1, 2, 4, ... of the remaining
    let now = gantry::time::Time::from_secs(1_000);
    let (mut c, mut out, _) = primed(600, now);
    assert_eq!(
        answer_all(&mut c, &mut out, now),
        vec![1, 2, 4, 8, 16, 32, 64, 128, 245]
    );
    let (mut c, mut out, _) = primed(10, now);
    assert_eq!(answer_all(&mut c, &mut out, now), vec![1, 2, 4, 3]);
}

fn pod(
    name: &str,
    node: &str,
    phase: &str,
    ready: Option<&str>,
    restarts: i32,
    created: &str,
) -> Pod {
    let mut p = json!({"metadata": {"name": name, "uid": name, "creationTimestamp": created},
                       "spec": {"containers": [], "nodeName": node},
                       "status": {"phase": phase,
                                  "containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": restarts}]}});
    if let Some(t) = ready {
        p["status"]["conditions"] =
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
    }
    serde_json::from_value(p).unwrap()
}

#[test]
fn deletion_order_follows_active_pods_with_ranks() {
    let now = 1_735_689_600i128 * 1_000_000_000; // 2025-01-01
    let old = "2024-12-01T00:00:00Z";
    let new = "2024-12-31T23:00:00Z";
    use std::cmp::Ordering::{Greater, Less};
    // (a, rank a, b, rank b, a is deleted before b?)
    let cases = [
        (
            pod("a", "", "Running", None, 0, old),
            0,
            pod("b", "n", "Running", None, 0, old),
            0,
            Less,
            "unassigned first",
        ),
        (
            pod("a", "n", "Pending", None, 0, old),
            0,
            pod("b", "n", "Running", None, 0, old),
            0,
            Less,
            "pending before running",
        ),
        (
            pod("a", "n", "Running", None, 0, old),
            0,
            pod("b", "n", "Running", Some(old), 0, old),
            0,
            Less,
            "not ready first",
        ),
        (
            pod("a", "n", "Running", Some(old), 0, old),
            1,
            pod("b", "n", "Running", Some(old), 0, old),
            3,
            Greater,
            "higher rank first",
        ),
        (
            pod("a", "n", "Running", Some(new), 0, old),
            0,
            pod("b", "n", "Running", Some(old), 0, old),
            0,
            Less,
            "recently ready first",
        ),
        (
            pod("a", "n", "Running", Some(old), 5, old),
            0,
            pod("b", "n", "Running", Some(old), 1, old),
            0,
            Less,
            "more restarts first",
        ),
        (
            pod("a", "n", "Running", Some(old), 0, new),
            0,
            pod("b", "n", "Running", Some(old), 0, old),
            0,
            Less,
            "newer first",
        ),
        (
            pod("b", "n", "Running", Some(old), 0, old),
            0,
            pod("a", "n", "Running", Some(old), 0, old),
            0,
            Greater,
            "then by uid",
        ),
    ];
    for (a, ra, b, rb, want, why) in cases {
        assert_eq!(compare_for_deletion(&a, ra, &b, rb, now), want, "{why}");
    }
}

#[test]
fn the_controller_is_a_component() {
    let c = ReplicaSetController::new();
    assert_eq!(c.name(), "replicaset-controller");
    let watched: Vec<&str> = c.watches().iter().map(|w| w.resource.plural).collect();
    assert_eq!(watched, vec!["replicasets", "pods"]);
}

#[test]
fn nothing_is_synced_before_every_informer_has_listed() {
    // k8s: WaitForCacheSync. A restarted controller that got its ReplicaSets listed before
    // their pods must not take the ReplicaSet for empty and create its pods a second time.
    let rs = {
        let mut v = rs_body("web", 2);
        v["metadata"]["uid"] = json!("rs-uid");
        v["metadata"]["resourceVersion"] = json!("5");
        v
    };
    let pod = |n: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": n, "namespace": "default", "uid": format!("uid-{n}"),
                            "resourceVersion": "6", "labels": {"app": "web"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                "name": "web", "uid": "rs-uid", "controller": true}]},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]},
               "status": {"phase": "Running"}})
    };
    let mut c = ReplicaSetController::new();
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let creates = |out: &[Effect]| {
        out.iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::Api {
                        op: ApiOp::Create { .. },
                        ..
                    }
                )
            })
            .count()
    };
    let now = gantry::time::Time::from_secs(100);
    let mut out = Vec::new();
    c.step(
        now,
        Input::Listed {
            resource: by_plural("apps", "replicasets").unwrap(),
            items: vec![rs],
            revision: 6,
        },
        &mut rng,
        &mut out,
    );
    assert_eq!(creates(&out), 0, "pods not listed yet: {out:?}");
    out.clear();
    c.step(
        now,
        Input::Listed {
            resource: by_plural("", "pods").unwrap(),
            items: vec![pod("web-a"), pod("web-b")],
            revision: 6,
        },
        &mut rng,
        &mut out,
    );
    assert_eq!(creates(&out), 0, "both pods exist: {out:?}");
}

#[test]
fn replication_controllers_are_managed_through_the_same_controller() {
    let mut d = Driver::new(1);
    d.add(Box::new(ReplicaSetController::for_replication_controllers()));
    let rcs = by_plural("", "replicationcontrollers").unwrap();
    // No selector: it defaults to the template's labels.
    d.client(ApiOp::Create {
        resource: rcs,
        namespace: Some("default".into()),
        body: json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "old", "namespace": "default"},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    })
    .unwrap();
    let all = pods(&d);
    assert_eq!(all.len(), 3);
    for p in &all {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["apiVersion"].as_str()),
            (Some("ReplicationController"), Some("v1"))
        );
        assert_eq!(p["metadata"]["labels"]["app"], "old");
    }
    let rc = futures::FutureExt::now_or_never(d.api.get(rcs, Some("default"), "old"))
        .unwrap()
        .unwrap();
    assert_eq!(rc["status"]["replicas"], 3, "{rc}");
    assert_eq!(rc["kind"], "ReplicationController");
    assert_eq!(rc["spec"]["selector"], json!({"app": "old"}));
    // The ReplicaSet controller leaves them alone, and this one leaves ReplicaSets alone.
    create(&mut d, "replicasets", rs_body("web", 2));
    assert_eq!(pods(&d).len(), 3);
}
