//! The namespace controller core driven against the real apiserver core (zero-latency test
//! host): reference §2 — a deleted namespace keeps its `kubernetes` finalizer until its content
//! is gone.

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::Part;
use gantry::component::ApiOp;
use gantry::controllers::namespace::NamespaceController;
use gantry::testkit::Driver;
use serde_json::{json, Value};

fn res(plural: &str) -> &'static gantry::api::registry::ResourceInfo {
    by_plural("", plural).unwrap()
}

fn create(d: &mut Driver, plural: &str, ns: Option<&str>, body: Value) {
    d.client(ApiOp::Create {
        resource: res(plural),
        namespace: ns.map(String::from),
        body,
    })
    .unwrap();
}

fn get(d: &mut Driver, plural: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    d.client(ApiOp::Get {
        resource: res(plural),
        namespace: ns.map(String::from),
        name: name.into(),
    })
    .ok()
}

#[test]
fn a_deleted_namespace_goes_once_its_content_has() {
    let mut d = Driver::new(1);
    d.add(Box::new(NamespaceController::new()));
    create(
        &mut d,
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}),
    );
    create(
        &mut d,
        "configmaps",
        Some("tmp"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": "tmp"}}),
    );
    // Held by a finalizer of someone else's: the namespace must wait for it.
    create(
        &mut d,
        "secrets",
        Some("tmp"),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "held", "namespace": "tmp", "finalizers": ["example.com/hold"]}}),
    );
    create(
        &mut d,
        "pods",
        Some("tmp"),
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "tmp"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    d.client(ApiOp::Delete {
        resource: res("namespaces"),
        namespace: None,
        name: "tmp".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    d.advance(Duration::from_secs(1));
    assert!(get(&mut d, "configmaps", Some("tmp"), "plain").is_none());
    assert!(
        get(&mut d, "pods", Some("tmp"), "p").is_none(),
        "unscheduled: gone at once"
    );
    let held = get(&mut d, "secrets", Some("tmp"), "held").expect("held by its finalizer");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let ns = get(&mut d, "namespaces", None, "tmp").expect("still there");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Terminating");
    // k8s: the deleter's conditions say what holds the namespace back.
    let conditions: Vec<(String, String, String)> = ns["status"]["conditions"]
        .as_array()
        .expect("deletion conditions")
        .iter()
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or("").to_string();
            (s("type"), s("status"), s("message"))
        })
        .collect();
    let want = [
        ("NamespaceDeletionDiscoveryFailure", "False", "All resources successfully discovered"),
        ("NamespaceDeletionGroupVersionParsingFailure", "False", "All legacy kube types successfully parsed"),
        ("NamespaceDeletionContentFailure", "False", "All content successfully deleted, may be waiting on finalization"),
        ("NamespaceContentRemaining", "True", "Some resources are remaining: secrets has 1 resource instances"),
        ("NamespaceFinalizersRemaining", "True", "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(conditions, want);
    // Creating into a terminating namespace is refused.
    let refused = d.client(ApiOp::Create {
        resource: res("configmaps"),
        namespace: Some("tmp".into()),
        body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": "tmp"}}),
    });
    assert_eq!(refused.unwrap_err().code, 403);

    // The other finalizer goes; the next pass (2 s later) finds nothing and finalizes.
    let mut released = held.clone();
    released["metadata"]["finalizers"] = json!([]);
    d.client(ApiOp::Update {
        resource: res("secrets"),
        namespace: Some("tmp".into()),
        name: "held".into(),
        body: released,
        part: Part::Main,
    })
    .unwrap();
    d.advance(Duration::from_secs(3));
    assert!(
        get(&mut d, "namespaces", None, "tmp").is_none(),
        "the namespace is gone"
    );
}

#[test]
fn namespaces_not_being_deleted_are_left_alone() {
    let mut d = Driver::new(1);
    d.add(Box::new(NamespaceController::new()));
    create(
        &mut d,
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}),
    );
    create(
        &mut d,
        "configmaps",
        Some("kept"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "kept"}}),
    );
    d.advance(Duration::from_secs(10));
    assert!(get(&mut d, "configmaps", Some("kept"), "c").is_some());
    assert!(d.log.iter().all(
        |(who, what, _)| who != "namespace-controller" || !what.starts_with("deletecollection")
    ));
}
