use futures::FutureExt;
use serde_json::{json, Value};

use super::*;
use crate::store::mem::MemStore;

fn now<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

struct Harness {
    api: ApiServer<MemStore>,
    n: u64,
    t: i64,
}

impl Harness {
    fn new() -> Self {
        let mut h = Harness {
            api: ApiServer::new(MemStore::default()),
            n: 0,
            t: 1_700_000_000,
        };
        let mut n = 0;
        now(h.api.bootstrap(|| {
            n += 1;
            ctx_at(n, 1_700_000_000)
        }))
        .unwrap();
        h.n = 100;
        h
    }

    fn ctx(&mut self) -> RequestContext {
        self.n += 1;
        ctx_at(self.n, self.t)
    }

    fn create(&mut self, plural: &str, ns: Option<&str>, body: Value) -> Result<Value, ApiError> {
        let ctx = self.ctx();
        now(self.api.create(res(plural), ns, body, &ctx)).map(Arc::unwrap_or_clone)
    }

    fn update(
        &mut self,
        plural: &str,
        ns: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let ctx = self.ctx();
        now(self.api.update(res(plural), ns, name, body, part, &ctx)).map(Arc::unwrap_or_clone)
    }

    fn delete(
        &mut self,
        plural: &str,
        ns: Option<&str>,
        name: &str,
        opts: DeleteOptions,
    ) -> Result<Value, ApiError> {
        let ctx = self.ctx();
        now(self.api.delete(res(plural), ns, name, &opts, &ctx)).map(Arc::unwrap_or_clone)
    }

    fn get(&self, plural: &str, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        now(self.api.get(res(plural), ns, name))
    }
}

fn ctx_at(n: u64, secs: i64) -> RequestContext {
    RequestContext::new(
        Timestamp::from_second(secs).unwrap(),
        format!("00000000-0000-4000-8000-{n:012}"),
        n * 7919,
    )
}

fn res(plural: &str) -> &'static ResourceInfo {
    registry::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap()
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

fn rs(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn bootstrap_creates_the_boot_namespaces_once() {
    let mut h = Harness::new();
    now(h.api.bootstrap(|| ctx_at(99, 0))).unwrap();
    let (items, _) = now(h.api.list(res("namespaces"), None, &ListOptions::default())).unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let ns = h.get("namespaces", None, "default").unwrap();
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(h
        .create("namespaces", None, json!({"metadata": {"name": "default"}}))
        .is_err());
}

#[test]
fn create_sets_server_fields_and_pod_defaults() {
    let mut h = Harness::new();
    let p = h.create("pods", Some("default"), pod("web")).unwrap();
    let m = &p["metadata"];
    assert_eq!(m["namespace"], "default");
    assert_eq!(m["uid"], "00000000-0000-4000-8000-000000000101");
    assert_eq!(m["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert!(m.get("generation").is_none());
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    // k8s: DefaultTolerationSeconds
    let tolerations = spec["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0]["tolerationSeconds"], 300);
    // What was returned is what is stored.
    assert_eq!(h.get("pods", Some("default"), "web").unwrap(), p);

    let r = h
        .create("replicasets", Some("default"), rs("web", 3))
        .unwrap();
    assert_eq!(r["metadata"]["generation"], 1);
    assert_eq!(r["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
}

#[test]
fn create_rejects_bad_input_with_the_right_status() {
    let mut h = Harness::new();
    h.create("pods", Some("default"), pod("taken")).unwrap();
    let no_containers = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
    let mismatched = {
        let mut r = rs("web", 1);
        r["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        r
    };
    // resource, namespace, body, code, reason, text in the message
    type Case<'a> = (&'a str, Option<&'a str>, Value, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "pods",
            Some("default"),
            pod("taken"),
            409,
            "AlreadyExists",
            "pods \"taken\" already exists",
        ),
        (
            "pods",
            Some("default"),
            pod("Bad_Name"),
            422,
            "Invalid",
            "metadata.name: Invalid value: \"Bad_Name\"",
        ),
        (
            "pods",
            Some("nowhere"),
            pod("p"),
            404,
            "NotFound",
            "namespaces \"nowhere\" not found",
        ),
        (
            "pods",
            Some("default"),
            no_containers,
            422,
            "Invalid",
            "spec.containers: Required value",
        ),
        (
            "replicasets",
            Some("default"),
            mismatched,
            422,
            "Invalid",
            "`selector` does not match template `labels`",
        ),
        (
            "pods",
            Some("default"),
            json!({"kind": "Service", "metadata": {"name": "p"}}),
            400,
            "BadRequest",
            "does not match",
        ),
        (
            "pods",
            Some("default"),
            json!({"metadata": {"name": "p", "resourceVersion": "5"}}),
            400,
            "BadRequest",
            "resourceVersion should not be set",
        ),
        (
            "pods",
            Some("default"),
            json!({"metadata": {}}),
            422,
            "Invalid",
            "name or generateName is required",
        ),
        (
            "pods",
            Some("default"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": "nope"}}),
            400,
            "BadRequest",
            "cannot be handled as a Pod",
        ),
        (
            "services",
            Some("default"),
            json!({"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}),
            422,
            "Invalid",
            "DNS-1035",
        ),
        (
            "pods",
            Some("default"),
            json!({"metadata": {"name": "p", "namespace": "other"}}),
            400,
            "BadRequest",
            "does not match the namespace",
        ),
    ];
    for (plural, ns, body, code, reason, text) in cases {
        let e = h.create(plural, ns, body.clone()).unwrap_err();
        assert_eq!((e.code, e.reason), (code, reason), "{body}: {}", e.message);
        assert!(e.message.contains(text), "{body}: {}", e.message);
    }
}

#[test]
fn generate_name_and_terminating_namespaces() {
    let mut h = Harness::new();
    let p = h
        .create(
            "pods",
            Some("default"),
            json!({"metadata": {"generateName": "web-"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        )
        .unwrap();
    let name = p["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");

    h.create("namespaces", None, json!({"metadata": {"name": "doomed"}}))
        .unwrap();
    let ns = h
        .delete("namespaces", None, "doomed", DeleteOptions::default())
        .unwrap();
    assert!(
        ns["metadata"]["deletionTimestamp"].is_string(),
        "held by the kubernetes finalizer"
    );
    let e = h.create("pods", Some("doomed"), pod("p")).unwrap_err();
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert!(
        e.message.contains("because it is being terminated"),
        "{}",
        e.message
    );
}

#[test]
fn updates_follow_resource_version_generation_and_status_rules() {
    let mut h = Harness::new();
    let created = h
        .create("replicasets", Some("default"), rs("web", 1))
        .unwrap();

    // Stale resourceVersion: 409 and nothing written.
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["replicas"] = json!(5);
    let e = h
        .update("replicasets", Some("default"), "web", stale, Part::Main)
        .unwrap_err();
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert_eq!(
        h.get("replicasets", Some("default"), "web").unwrap(),
        created
    );

    // A label change does not bump generation; a spec change does.
    let mut relabel = created.clone();
    relabel["metadata"]["labels"] = json!({"team": "a"});
    let relabeled = h
        .update("replicasets", Some("default"), "web", relabel, Part::Main)
        .unwrap();
    assert_eq!(relabeled["metadata"]["generation"], 1);
    assert_ne!(rv(&relabeled), rv(&created));
    let mut scale = relabeled.clone();
    scale["spec"]["replicas"] = json!(3);
    scale["status"] = json!({"replicas": 99}); // ignored on the main resource
    let scaled = h
        .update("replicasets", Some("default"), "web", scale, Part::Main)
        .unwrap();
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(
        scaled["status"],
        json!({"replicas": 0}),
        "the status kept is the server's"
    );

    // /status changes only the status, and not the generation.
    let mut status = scaled.clone();
    status["status"] = json!({"replicas": 3, "observedGeneration": 2});
    status["spec"]["replicas"] = json!(100);
    let s = h
        .update("replicasets", Some("default"), "web", status, Part::Status)
        .unwrap();
    assert_eq!(
        (
            s["spec"]["replicas"].clone(),
            s["status"]["replicas"].clone()
        ),
        (json!(3), json!(3))
    );
    assert_eq!(s["metadata"]["generation"], 2);

    // Without a resourceVersion the update applies to the latest version.
    let mut blind = s.clone();
    blind["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    blind["spec"]["replicas"] = json!(4);
    assert_eq!(
        h.update("replicasets", Some("default"), "web", blind, Part::Main)
            .unwrap()["spec"]["replicas"],
        4
    );

    // A no-op update writes nothing.
    let current = h.get("replicasets", Some("default"), "web").unwrap();
    let same = h
        .update(
            "replicasets",
            Some("default"),
            "web",
            current.clone(),
            Part::Main,
        )
        .unwrap();
    assert_eq!(rv(&same), rv(&current));

    // Server-managed metadata cannot be changed.
    let mut forged = current.clone();
    forged["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    forged["metadata"]["labels"] = json!({"x": "y"});
    let kept = h
        .update("replicasets", Some("default"), "web", forged, Part::Main)
        .unwrap();
    assert_eq!(
        kept["metadata"]["creationTimestamp"],
        current["metadata"]["creationTimestamp"]
    );
    let mut other_uid = kept.clone();
    other_uid["metadata"]["uid"] = json!("someone-else");
    assert_eq!(
        h.update("replicasets", Some("default"), "web", other_uid, Part::Main)
            .unwrap_err()
            .code,
        409
    );
}

#[test]
fn pod_specs_are_mostly_immutable() {
    let mut h = Harness::new();
    let p = h.create("pods", Some("default"), pod("web")).unwrap();
    let mut image = p.clone();
    image["spec"]["containers"][0]["image"] = json!("busybox:1.37");
    assert!(h
        .update("pods", Some("default"), "web", image, Part::Main)
        .is_ok());
    let mut node = h.get("pods", Some("default"), "web").unwrap();
    node["spec"]["nodeName"] = json!("n1");
    let e = h
        .update("pods", Some("default"), "web", node, Part::Main)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("pod updates may not change fields"),
        "{}",
        e.message
    );
}

#[test]
fn binding_assigns_a_pod_once() {
    let mut h = Harness::new();
    h.create("pods", Some("default"), pod("web")).unwrap();
    let ctx = h.ctx();
    let bound = now(h.api.bind("default", "web", "n1", &ctx)).unwrap();
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let cond = &bound["status"]["conditions"][0];
    assert_eq!(
        (cond["type"].as_str(), cond["status"].as_str()),
        (Some("PodScheduled"), Some("True"))
    );
    let e = now(h.api.bind("default", "web", "n2", &ctx)).unwrap_err();
    assert_eq!(e.code, 409);
    assert!(
        e.message
            .contains("pod web is already assigned to node \"n1\""),
        "{}",
        e.message
    );
    assert_eq!(
        now(h.api.bind("default", "nope", "n1", &ctx))
            .unwrap_err()
            .code,
        404
    );
}

#[test]
fn pod_deletion_is_graceful_on_a_node_and_immediate_otherwise() {
    let mut h = Harness::new();
    h.create("pods", Some("default"), pod("loose")).unwrap();
    h.delete("pods", Some("default"), "loose", DeleteOptions::default())
        .unwrap();
    assert_eq!(
        h.get("pods", Some("default"), "loose").unwrap_err().code,
        404,
        "unbound pods go at once"
    );

    h.create("pods", Some("default"), pod("web")).unwrap();
    let ctx = h.ctx();
    now(h.api.bind("default", "web", "n1", &ctx)).unwrap();
    let deleting = h
        .delete("pods", Some("default"), "web", DeleteOptions::default())
        .unwrap();
    // k8s: deletionTimestamp = now + terminationGracePeriodSeconds (30 s)
    assert_eq!(
        deleting["metadata"]["deletionTimestamp"],
        "2023-11-14T22:13:50Z"
    );
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(
        h.get("pods", Some("default"), "web").is_ok(),
        "the kubelet has not finished yet"
    );
    // The kubelet's final delete with grace 0 removes it.
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    h.delete("pods", Some("default"), "web", opts).unwrap();
    assert_eq!(h.get("pods", Some("default"), "web").unwrap_err().code, 404);
}

#[test]
fn finalizers_hold_deletion_and_preconditions_are_checked() {
    let mut h = Harness::new();
    let mut cm = json!({"metadata": {"name": "cfg", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}});
    let created = h.create("configmaps", Some("default"), cm.clone()).unwrap();

    let wrong_uid = DeleteOptions {
        precondition_uid: Some("not-it".into()),
        ..Default::default()
    };
    assert_eq!(
        h.delete("configmaps", Some("default"), "cfg", wrong_uid)
            .unwrap_err()
            .code,
        409
    );

    let held = h
        .delete(
            "configmaps",
            Some("default"),
            "cfg",
            DeleteOptions::default(),
        )
        .unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    // No new finalizers once deletion started.
    let mut more = held.clone();
    more["metadata"]["finalizers"] = json!(["example.com/hold", "example.com/new"]);
    assert_eq!(
        h.update("configmaps", Some("default"), "cfg", more, Part::Main)
            .unwrap_err()
            .code,
        422
    );
    // Removing the last finalizer completes the deletion.
    let mut release = held.clone();
    release["metadata"]["finalizers"] = json!([]);
    h.update("configmaps", Some("default"), "cfg", release, Part::Main)
        .unwrap();
    assert_eq!(
        h.get("configmaps", Some("default"), "cfg")
            .unwrap_err()
            .code,
        404
    );

    // Foreground deletion hands the object to the garbage collector's finalizer.
    cm["metadata"]["finalizers"] = json!([]);
    h.create("configmaps", Some("default"), cm).unwrap();
    let opts = DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    let fg = h
        .delete("configmaps", Some("default"), "cfg", opts)
        .unwrap();
    assert_eq!(fg["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    let _ = created;
}

#[test]
fn list_filters_by_labels_and_fields() {
    let mut h = Harness::new();
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let mut p = pod(name);
        p["metadata"]["labels"]["app"] = json!(app);
        h.create("pods", Some("default"), p).unwrap();
    }
    let ctx = h.ctx();
    now(h.api.bind("default", "b", "n1", &ctx)).unwrap();
    let list = |labels: &str, fields: &str| -> Vec<String> {
        let opts = ListOptions {
            label_selector: Selector::parse(labels).unwrap(),
            field_selector: FieldSelector::parse(res("pods"), fields).unwrap(),
        };
        now(h.api.list(res("pods"), Some("default"), &opts))
            .unwrap()
            .0
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("", ""), vec!["a", "b", "c"]);
    assert_eq!(list("app=web", ""), vec!["a", "b"]);
    assert_eq!(list("app=web", "spec.nodeName=n1"), vec!["b"]);
    assert_eq!(list("", "spec.nodeName="), vec!["a", "c"]);
    assert_eq!(list("app notin (web)", ""), vec!["c"]);
    let e = FieldSelector::parse(res("pods"), "spec.image=x").unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "field label not supported: spec.image")
    );
}

#[test]
fn watch_reports_objects_entering_and_leaving_the_selector() {
    let mut h = Harness::new();
    let (_, start) = now(h
        .api
        .list(res("pods"), Some("default"), &ListOptions::default()))
    .unwrap();
    let opts = ListOptions {
        label_selector: Selector::parse("app=web").unwrap(),
        ..Default::default()
    };
    let mut w = now(h.api.watch(res("pods"), Some("default"), start, opts)).unwrap();
    let p = h.create("pods", Some("default"), pod("p")).unwrap();
    let relabel = |h: &mut Harness, app: &str| {
        let mut cur = h.get("pods", Some("default"), "p").unwrap();
        cur["metadata"]["labels"]["app"] = json!(app);
        h.update("pods", Some("default"), "p", cur, Part::Main)
            .unwrap();
    };
    relabel(&mut h, "db"); // leaves
    relabel(&mut h, "cache"); // still out: no event
    relabel(&mut h, "web"); // enters
    let mut other = pod("q");
    other["metadata"]["labels"]["app"] = json!("db");
    h.create("pods", Some("default"), other).unwrap(); // never matches
    h.delete("pods", Some("default"), "p", DeleteOptions::default())
        .unwrap();
    let events: Vec<(EventType, String)> = std::iter::from_fn(|| w.try_next())
        .map(|e| {
            let e = e.unwrap();
            (
                e.type_,
                e.object["metadata"]["labels"]["app"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (EventType::Added, "web".into()),
            (EventType::Deleted, "db".into()),
            (EventType::Added, "web".into()),
            (EventType::Deleted, "web".into()),
        ]
    );
    let _ = p;
}

#[test]
fn namespaces_go_once_finalized() {
    let mut h = Harness::new();
    h.create("namespaces", None, json!({"metadata": {"name": "tmp"}}))
        .unwrap();
    let ns = h
        .delete("namespaces", None, "tmp", DeleteOptions::default())
        .unwrap();
    // The namespace controller empties it, then clears spec.finalizers through /finalize.
    let mut fin = ns.clone();
    fin["spec"]["finalizers"] = json!([]);
    fin["metadata"]["labels"] = json!({"ignored": "yes"});
    h.update("namespaces", None, "tmp", fin, Part::Finalize)
        .unwrap();
    assert_eq!(h.get("namespaces", None, "tmp").unwrap_err().code, 404);
}

#[test]
fn status_updates_check_the_status_shape_and_keep_the_rest() {
    let mut h = Harness::new();
    let created = h.create("pods", Some("default"), pod("p")).unwrap();
    let write = |h: &mut Harness, status: Value| {
        let body = json!({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": "p", "namespace": "default"}, "status": status});
        h.update("pods", Some("default"), "p", body, Part::Status)
    };
    // A status of the wrong shape is refused, naming the kind.
    let e = write(&mut h, json!({"phase": 7})).unwrap_err();
    assert_eq!((e.code, e.reason), (400, "BadRequest"));
    assert!(
        e.message.contains("cannot be handled as a Pod"),
        "{}",
        e.message
    );
    let e = write(&mut h, json!({"containerStatuses": "running"})).unwrap_err();
    assert_eq!(e.code, 400);
    // A good one replaces the status, normalized (unknown fields dropped), and nothing else.
    let s = write(
        &mut h,
        json!({"phase": "Running", "podIP": "10.0.0.9", "bogus": 1}),
    )
    .unwrap();
    assert_eq!(
        s["status"],
        json!({"phase": "Running", "podIP": "10.0.0.9"})
    );
    assert_eq!(s["spec"], created["spec"]);
    assert_eq!(s["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(h.get("pods", Some("default"), "p").unwrap(), s);

    // A namespace's status keeps its default phase through a status update.
    h.create(
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .unwrap();
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "status": {}});
    let ns = h
        .update("namespaces", None, "team", body, Part::Status)
        .unwrap();
    assert_eq!(ns["status"]["phase"], "Active");
}

#[test]
fn written_objects_are_reused_only_at_their_revision() {
    let mut h = Harness::new();
    let created = h.create("pods", Some("default"), pod("p")).unwrap();
    let key = res("pods").storage_key(Some("default"), "p");
    let revision: Revision = rv(&created).parse().unwrap();
    // The object as written, shared, at the revision of the write only.
    let decoded = h
        .api
        .decoded(&key, revision)
        .expect("this apiserver wrote it");
    assert_eq!(*decoded, created);
    assert!(h.api.decoded(&key, revision + 1).is_none());

    // Another writer (a second apiserver on the same store) changes the object: reads see the
    // stored bytes, not the remembered object.
    let mut theirs = created.clone();
    theirs["metadata"]["labels"] = json!({"app": "theirs"});
    theirs["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let rev = now(h.api.store().update(&key, encode(&theirs), Some(revision))).unwrap();
    let read = h.get("pods", Some("default"), "p").unwrap();
    assert_eq!(read["metadata"]["labels"], json!({"app": "theirs"}));
    assert_eq!(rv(&read), rev.to_string());
    // An update based on it keeps their change.
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}});
    let updated = h
        .update("pods", Some("default"), "p", body, Part::Status)
        .unwrap();
    assert_eq!(updated["metadata"]["labels"], json!({"app": "theirs"}));
    let revision: Revision = rv(&updated).parse().unwrap();
    assert_eq!(*h.api.decoded(&key, revision).unwrap(), updated);

    // A deleted key is forgotten.
    h.delete("pods", Some("default"), "p", DeleteOptions::default())
        .unwrap();
    assert!(h.api.decoded(&key, revision).is_none());
    assert_eq!(h.get("pods", Some("default"), "p").unwrap_err().code, 404);
}

#[test]
fn stored_bytes_leave_out_the_resource_version_only() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "c", "resourceVersion": "12", "labels": {"resourceVersion": "kept"}},
                     "data": {"resourceVersion": "kept too"}});
    let mut want = obj.clone();
    want["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(encode(&obj), serde_json::to_vec(&want).unwrap());
    assert_eq!(decode(&encode(&obj), 12).unwrap(), obj);
    assert_eq!(
        encode(&json!("not an object")),
        b"\"not an object\"".as_ref()
    );
}

#[test]
fn metadata_is_checked_on_update_unless_it_is_the_stored_metadata() {
    let mut h = Harness::new();
    let created = h
        .create("replicasets", Some("default"), rs("web", 1))
        .unwrap();
    // Unchanged metadata (resourceVersion aside) with a spec change: accepted.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(2);
    let scaled = h
        .update("replicasets", Some("default"), "web", scaled, Part::Main)
        .unwrap();
    // Changed metadata is validated again.
    let cases = [json!({"bad key!": "x"}), json!({"app": "-leading-dash"})];
    for labels in cases {
        let mut bad = scaled.clone();
        bad["metadata"]["labels"] = labels.clone();
        let e = h
            .update("replicasets", Some("default"), "web", bad, Part::Main)
            .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"), "{labels}");
    }
    assert!(
        !same_metadata(&scaled, &created),
        "generation and version moved on"
    );
    let mut only_version = created.clone();
    only_version["metadata"]["resourceVersion"] = json!("999");
    assert!(same_metadata(&only_version, &created));
}

#[test]
fn owner_references_need_their_identity_and_one_controller_at_most() {
    let mut h = Harness::new();
    let owner = |kind: &str, name: &str, uid: &str, controller: bool| json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": controller});
    let cm = |refs: Value| json!({"metadata": {"name": "c", "ownerReferences": refs}});
    // k8s: ValidateOwnerReferences, field by field.
    let cases = [
        (json!([owner("ReplicaSet", "a", "u1", true)]), None),
        (json!([owner("ReplicaSet", "a", "", false)]), Some("metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty")),
        (json!([owner("", "a", "u1", false)]), Some("metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty")),
        (json!([owner("ReplicaSet", "", "u1", false)]), Some("metadata.ownerReferences.name: Invalid value: \"\": name must not be empty")),
        (json!([{"apiVersion": "apps/", "kind": "ReplicaSet", "name": "a", "uid": "u"}]),
         Some("metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty")),
        (json!([owner("ReplicaSet", "a", "u1", true), owner("Deployment", "b", "u2", true)]),
         Some("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and Deployment/b")),
    ];
    for (refs, want) in cases {
        let got = h.create("configmaps", Some("default"), cm(refs.clone()));
        match want {
            None => {
                got.unwrap_or_else(|e| panic!("{refs}: {}", e.message));
                h.delete("configmaps", Some("default"), "c", DeleteOptions::default())
                    .unwrap();
            }
            Some(w) => {
                let e = got.unwrap_err();
                assert_eq!(e.code, 422, "{refs}");
                assert!(e.message.contains(w), "{refs}: {}", e.message);
            }
        }
    }
}

/// §7.2/§7.4: the garbage collector's finalizers a delete leaves (k8s:
/// deletionFinalizersForGarbageCollection): the request's policy wins, then a GC finalizer
/// already there, then the kind's default (Orphan for v1 ReplicationControllers); the two
/// never stay together.
#[test]
fn deletes_leave_the_garbage_collectors_finalizers_by_policy_and_kind() {
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"},
                    "spec": {"replicas": 0, "selector": {"app": "x"},
                             "template": {"metadata": {"labels": {"app": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    // (kind, finalizers before, propagationPolicy, orphanDependents, finalizers after or the
    // error code; None: deleted at once)
    type Case = (
        &'static str,
        Value,
        Option<&'static str>,
        Option<bool>,
        Result<Option<Value>, u16>,
    );
    let cases: Vec<Case> = vec![
        ("configmaps", json!([]), None, None, Ok(None)),
        ("configmaps", json!([]), Some("Background"), None, Ok(None)),
        (
            "configmaps",
            json!([]),
            Some("Foreground"),
            None,
            Ok(Some(json!(["foregroundDeletion"]))),
        ),
        (
            "configmaps",
            json!([]),
            Some("Orphan"),
            None,
            Ok(Some(json!(["orphan"]))),
        ),
        (
            "configmaps",
            json!([]),
            None,
            Some(true),
            Ok(Some(json!(["orphan"]))),
        ),
        ("configmaps", json!([]), None, Some(false), Ok(None)),
        (
            "replicationcontrollers",
            json!([]),
            None,
            None,
            Ok(Some(json!(["orphan"]))),
        ),
        (
            "replicationcontrollers",
            json!([]),
            Some("Background"),
            None,
            Ok(None),
        ),
        // A finalizer already there counts as the policy when the request names none...
        (
            "configmaps",
            json!(["foregroundDeletion"]),
            None,
            None,
            Ok(Some(json!(["foregroundDeletion"]))),
        ),
        (
            "replicationcontrollers",
            json!(["foregroundDeletion"]),
            None,
            None,
            Ok(Some(json!(["foregroundDeletion"]))),
        ),
        // ...and the request's policy replaces it.
        (
            "configmaps",
            json!(["orphan"]),
            Some("Foreground"),
            None,
            Ok(Some(json!(["foregroundDeletion"]))),
        ),
        (
            "configmaps",
            json!(["a.io/x", "orphan"]),
            Some("Background"),
            None,
            Ok(Some(json!(["a.io/x"]))),
        ),
        (
            "configmaps",
            json!(["a.io/x"]),
            Some("Orphan"),
            None,
            Ok(Some(json!(["a.io/x", "orphan"]))),
        ),
        (
            "configmaps",
            json!([]),
            Some("Orphan"),
            Some(true),
            Err(422),
        ),
        ("configmaps", json!([]), Some("Sideways"), None, Err(400)),
    ];
    for (i, (plural, before, policy, orphan, want)) in cases.into_iter().enumerate() {
        let mut h = Harness::new();
        let mut obj = if plural == "configmaps" {
            cm.clone()
        } else {
            rc.clone()
        };
        obj["metadata"]["finalizers"] = before;
        h.create(plural, Some("default"), obj).unwrap();
        let opts = DeleteOptions {
            propagation_policy: policy.map(String::from),
            orphan_dependents: orphan,
            ..Default::default()
        };
        let got = h
            .delete(plural, Some("default"), "x", opts)
            .map_err(|e| e.code)
            .map(|_| {
                h.get(plural, Some("default"), "x")
                    .ok()
                    .map(|o| o["metadata"]["finalizers"].clone())
            });
        assert_eq!(got, want, "case {i}");
    }
}

fn svc_body(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn field_of(e: &ApiError) -> Vec<String> {
    e.details
        .as_ref()
        .map(|d| d.causes.iter().map(|c| c.field.clone()).collect())
        .unwrap_or_default()
}

#[test]
fn services_get_cluster_ips_and_node_ports_and_give_them_back() {
    let mut h = Harness::new();
    let ranges = service_alloc::ServiceRanges {
        cluster_ips: service_alloc::Ipv4Cidr::parse("10.0.0.0/29").unwrap(),
        node_ports: service_alloc::PortRange::parse("30000-30001").unwrap(),
    };
    h.api = ApiServer::new(MemStore::default()).with_service_ranges(ranges);
    now(h.api.bootstrap(|| ctx_at(1, 1_700_000_000))).unwrap();
    now(h
        .api
        .ensure_kubernetes_service("127.0.0.1:6443", || ctx_at(2, 1_700_000_000)))
    .unwrap();
    let k = h.get("services", Some("default"), "kubernetes").unwrap();
    assert_eq!(
        k["spec"]["clusterIP"],
        json!("10.0.0.1"),
        "the first address"
    );

    // 10.0.0.0/29: 6 addresses, the first taken; 5 Services fit, the sixth does not.
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..5 {
        let s = h
            .create(
                "services",
                Some("default"),
                svc_body(&format!("s{i}"), json!({"ports": [{"port": 80}]})),
            )
            .unwrap();
        assert_eq!(s["spec"]["ipFamilyPolicy"], json!("SingleStack"));
        assert_eq!(s["spec"]["clusterIPs"], json!([s["spec"]["clusterIP"]]));
        assert!(ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()));
    }
    assert!(!ips.contains("10.0.0.1"));
    let full = h
        .create(
            "services",
            Some("default"),
            svc_body("s5", json!({"ports": [{"port": 80}]})),
        )
        .unwrap_err();
    assert_eq!(full.code, 500);
    assert!(full.message.contains("range is full"), "{}", full.message);
    // A headless Service needs no address.
    let headless = h
        .create(
            "services",
            Some("default"),
            svc_body("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        )
        .unwrap();
    assert_eq!(headless["spec"]["clusterIP"], json!("None"));

    // Deleting one frees its address for the next.
    let gone = h.get("services", Some("default"), "s2").unwrap();
    h.delete("services", Some("default"), "s2", Default::default())
        .unwrap();
    let s5 = h
        .create(
            "services",
            Some("default"),
            svc_body("s5", json!({"ports": [{"port": 80}]})),
        )
        .unwrap();
    assert_eq!(s5["spec"]["clusterIP"], gone["spec"]["clusterIP"]);

    // Update: the clusterIP may not change; left out, it is kept.
    let mut changed = s5.clone();
    changed["spec"]["clusterIP"] = json!("10.0.0.6");
    let e = h
        .update("services", Some("default"), "s5", changed, Part::Main)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(field_of(&e), vec!["spec.clusterIPs[0]"]);
    assert!(
        e.message.contains("may not change once set"),
        "{}",
        e.message
    );
    let mut omitted = s5.clone();
    let spec = omitted["spec"].as_object_mut().unwrap();
    spec.remove("clusterIP");
    spec.remove("clusterIPs");
    let kept = h
        .update("services", Some("default"), "s5", omitted, Part::Main)
        .unwrap();
    assert_eq!(kept["spec"]["clusterIP"], s5["spec"]["clusterIP"]);

    // NodePorts: two ports fill the range; ClusterIP again gives them back.
    let mut np = kept.clone();
    np["spec"]["type"] = json!("NodePort");
    np["spec"]["ports"] = json!([{"name": "a", "port": 80}, {"name": "b", "port": 81}]);
    let np = h
        .update("services", Some("default"), "s5", np, Part::Main)
        .unwrap();
    let mut got: Vec<i64> = np["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![30000, 30001]);
    let mut back = np.clone();
    back["spec"]["type"] = json!("ClusterIP");
    let back = h
        .update("services", Some("default"), "s5", back, Part::Main)
        .unwrap();
    assert!(back["spec"]["ports"][0].get("nodePort").is_none(), "{back}");
    h.delete("services", Some("default"), "s0", Default::default())
        .unwrap();
    let again = h
        .create(
            "services",
            Some("default"),
            svc_body(
                "n",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
            ),
        )
        .unwrap();
    assert_eq!(again["spec"]["ports"][0]["nodePort"], json!(30001));
}

#[test]
fn bad_services_are_refused_naming_the_field() {
    // (spec, the field the 422 names) — k8s: ValidateService and storage/alloc.go.
    let cases = [
        (
            json!({"ports": [{"port": 80}, {"port": 80}]}),
            "spec.ports[1].name",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            "spec.ports[1]",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
            "spec.ports[1].name",
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            "spec.ports[0].nodePort",
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 70000}]}),
            "spec.ports[0].nodePort",
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            "spec.ports[0].nodePort",
        ),
        (
            json!({"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"clusterIP": "banana", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}),
            "spec.ports[0].targetPort",
        ),
        (
            json!({"ports": [{"port": 80, "targetPort": 0}]}),
            "spec.ports[0].targetPort",
        ),
        (json!({"type": "ExternalName"}), "spec.externalName"),
        (
            json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
            "spec.ipFamilies[0]",
        ),
    ];
    let mut h = Harness::new();
    now(h
        .api
        .ensure_kubernetes_service("127.0.0.1:6443", || ctx_at(2, 1_700_000_000)))
    .unwrap();
    for (spec, field) in cases {
        let e = h
            .create("services", Some("default"), svc_body("bad", spec.clone()))
            .unwrap_err();
        assert_eq!(e.code, 422, "{spec}: {}", e.message);
        assert!(
            field_of(&e).iter().any(|f| f == field),
            "{spec}: {:?} {}",
            field_of(&e),
            e.message
        );
    }
    // Good ones: a named targetPort, TCP and UDP on one port, a static clusterIP.
    for spec in [
        json!({"ports": [{"port": 80, "targetPort": "http"}]}),
        json!({"ports": [{"name": "dns", "port": 53}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}),
        json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
    ] {
        let s = h.create("services", Some("default"), svc_body("good", spec.clone()));
        assert!(s.is_ok(), "{spec}: {:?}", s.err().map(|e| e.message));
        h.delete("services", Some("default"), "good", Default::default())
            .unwrap();
    }
}

#[test]
fn service_type_changes_allocate_and_release_as_upstream() {
    let mut h = Harness::new();
    let ranges = service_alloc::ServiceRanges {
        cluster_ips: service_alloc::Ipv4Cidr::parse("10.0.0.0/30").unwrap(),
        node_ports: service_alloc::PortRange::parse("30000-30000").unwrap(),
    };
    h.api = ApiServer::new(MemStore::default()).with_service_ranges(ranges);
    now(h.api.bootstrap(|| ctx_at(1, 1_700_000_000))).unwrap();
    // 10.0.0.0/30 holds two addresses.
    let a = h
        .create(
            "services",
            Some("default"),
            svc_body("a", json!({"ports": [{"port": 80}]})),
        )
        .unwrap();
    let ext = h
        .create(
            "services",
            Some("default"),
            svc_body(
                "ext",
                json!({"type": "ExternalName", "externalName": "db.example"}),
            ),
        )
        .unwrap();
    assert!(ext["spec"].get("clusterIP").is_none(), "{ext}");
    assert!(ext["spec"].get("ipFamilies").is_none(), "{ext}");
    // ExternalName → ClusterIP allocates (the last address).
    let mut to_ip = ext.clone();
    to_ip["spec"]["type"] = json!("ClusterIP");
    to_ip["spec"]["ports"] = json!([{"port": 53}]);
    let to_ip = h
        .update("services", Some("default"), "ext", to_ip, Part::Main)
        .unwrap();
    assert!(to_ip["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("10.0.0.")));
    assert_ne!(to_ip["spec"]["clusterIP"], a["spec"]["clusterIP"]);
    let full = h
        .create(
            "services",
            Some("default"),
            svc_body("b", json!({"ports": [{"port": 80}]})),
        )
        .unwrap_err();
    assert!(full.message.contains("range is full"), "{}", full.message);
    // ClusterIP → ExternalName drops the address and frees it.
    let mut back = to_ip.clone();
    back["spec"]["type"] = json!("ExternalName");
    let back = h
        .update("services", Some("default"), "ext", back, Part::Main)
        .unwrap();
    assert!(back["spec"].get("clusterIP").is_none(), "{back}");
    let b = h
        .create(
            "services",
            Some("default"),
            svc_body("b", json!({"ports": [{"port": 80}]})),
        )
        .unwrap();
    assert_eq!(b["spec"]["clusterIP"], to_ip["spec"]["clusterIP"]);
    // A dry run holds nothing.
    h.delete("services", Some("default"), "b", Default::default())
        .unwrap();
    let mut ctx = h.ctx();
    ctx.dry_run = true;
    let dry = now(h.api.create(
        res("services"),
        Some("default"),
        svc_body("c", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        &ctx,
    ))
    .unwrap();
    assert_eq!(dry["spec"]["ports"][0]["nodePort"], json!(30000));
    let real = h
        .create(
            "services",
            Some("default"),
            svc_body("c", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .unwrap();
    assert_eq!(real["spec"]["ports"][0]["nodePort"], json!(30000));
}

#[test]
fn random_uids_are_version_4_uuids_of_the_drawn_bits() {
    let cases = [
        (0u64, 0u64),
        (u64::MAX, u64::MAX),
        (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
        (0xdead_beef_0000_0fff, 0x0000_0000_0000_0001),
    ];
    for (a, b) in cases {
        let ctx = RequestContext {
            now: Timestamp::UNIX_EPOCH,
            uid: Uid::Random(a, b),
            random: 0,
            dry_run: false,
            user: apiserver_user(),
        };
        let want = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        );
        assert_eq!(ctx.uid(), want);
    }
}

#[test]
fn stored_json_is_what_serde_json_writes() {
    // Strings that need escapes (quotes, backslashes, every kind of control character) and
    // some that do not (non-ASCII, DEL, '/'), numbers of every kind, nesting, empties.
    let strings = [
        "",
        "plain",
        "a\"b",
        "back\\slash",
        "tab\there",
        "nl\n",
        "cr\r",
        "\u{8}\u{c}",
        "\u{0}\u{1}\u{1f}",
        "é ü 日本",
        "\u{7f}",
        "a/b",
        "\u{2028}",
    ];
    // Longer than a word, with the byte to escape in every position of one; and bytes just
    // around the ones that need escapes, which do not.
    let mut long: Vec<String> = vec![
        "0123456789abcdef0123456789abcdef".into(),
        "ééééé日本日本 ~~~~~~~~ \u{7f}\u{7f}\u{80}".into(),
        " !#$[]^_`{|}~ !#[]^ ".repeat(3),
    ];
    for special in ['"', '\\', '\u{0}', '\u{1f}', '\n'] {
        for at in 0..17 {
            let mut s: String = "abcdefghijklmnopq".into();
            s.replace_range(at..at + 1, &special.to_string());
            long.push(s);
        }
    }
    let strings: Vec<&str> = strings
        .iter()
        .copied()
        .chain(long.iter().map(String::as_str))
        .collect();
    let mut values = vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-17),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(-0.000123),
        json!(1e300),
        json!([]),
        json!({}),
        json!([[], {}, [null]]),
    ];
    for s in strings {
        values.push(json!(s));
        values.push(json!({ s: s, "n": [s, 1, {"k": s}] }));
    }
    values.push(
        json!({"metadata": {"name": "x", "resourceVersion": "3", "a\"": {"b": [1, 2.5]}},
                       "spec": {"resourceVersion": "kept"}, "z": null}),
    );
    for v in &values {
        let mut out = Vec::new();
        write_json(&mut out, v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(v).unwrap()
        );
        // Stored objects leave out metadata.resourceVersion only.
        let mut want = v.clone();
        if let Some(meta) = want.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        assert_eq!(encode(v), serde_json::to_vec(&want).unwrap(), "{v}");
    }
}

#[test]
fn a_byte_needs_an_escape_wherever_it_is_in_a_word() {
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    // Every byte, at every position of two words and a remainder, among fillers that border
    // the special bytes (and the high bit).
    for filler in [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut s = vec![filler; 19];
                s[at] = b;
                assert_eq!(
                    needs_escape(&s),
                    escaped(b) || escaped(filler),
                    "byte {b:#x} at {at} among {filler:#x}"
                );
            }
        }
    }
    assert!(!needs_escape(b""));
}
