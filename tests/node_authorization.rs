//! The Node authorizer and NodeRestriction in the apiserver core's chain (k8s:
//! --authorization-mode=Node,RBAC, NodeRestriction admission), on MemStore: a node reads only
//! what its pods use and writes only its own Node and its own pods' status.

use std::sync::Arc;

use futures::FutureExt;
use gantry::api::registry::{by_plural, ResourceInfo};
use gantry::api::status::ApiError;
use gantry::apiserver::{ApiServer, Part, RequestContext};
use gantry::auth::UserInfo;
use gantry::component::ApiOp;
use gantry::store::mem::MemStore;
use serde_json::{json, Value};

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

fn res(plural: &str) -> &'static ResourceInfo {
    by_plural("", plural).unwrap()
}

struct Api {
    api: ApiServer<MemStore>,
    n: u64,
}

fn ctx(n: u64) -> RequestContext {
    RequestContext::new(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        format!("00000000-0000-4000-8000-{n:012}"),
        n * 7919,
    )
}

impl Api {
    fn new() -> Api {
        let api = ApiServer::new(MemStore::default());
        let mut n = 0;
        ready(api.bootstrap(|| {
            n += 1;
            ctx(n)
        }))
        .expect("bootstrap");
        Api { api, n: 1000 }
    }

    /// `op` as `user` (`None`: the apiserver's own identity).
    fn run(&mut self, user: Option<&UserInfo>, op: ApiOp) -> Result<Arc<Value>, ApiError> {
        self.n += 1;
        let mut c = ctx(self.n);
        if let Some(u) = user {
            c = c.as_user(Arc::new(u.clone()));
        }
        ready(self.api.execute(op, &c))
    }

    fn create(&mut self, plural: &str, ns: Option<&str>, body: Value) -> Arc<Value> {
        self.run(
            None,
            ApiOp::Create {
                resource: res(plural),
                namespace: ns.map(String::from),
                body,
            },
        )
        .unwrap_or_else(|e| panic!("create {plural}: {}", e.message))
    }
}

fn get(plural: &str, ns: Option<&str>, name: &str) -> ApiOp {
    ApiOp::Get {
        resource: res(plural),
        namespace: ns.map(String::from),
        name: name.into(),
    }
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn pod_on(name: &str, node: &str, secret: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": node, "automountServiceAccountToken": false,
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}],
                    "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
}

#[test]
fn a_node_reads_only_the_secrets_of_its_own_pods() {
    let mut api = Api::new();
    for n in ["n1", "n2"] {
        api.create("nodes", None, node(n));
    }
    for s in ["mine", "theirs", "unused"] {
        api.create(
            "secrets",
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s}}),
        );
    }
    api.create("pods", Some("default"), pod_on("a", "n1", "mine"));
    api.create("pods", Some("default"), pod_on("b", "n2", "theirs"));
    let n1 = UserInfo::node("n1");
    // (secret, allowed for n1)
    let cases = [("mine", true), ("theirs", false), ("unused", false)];
    for (secret, allowed) in cases {
        let got = api.run(Some(&n1), get("secrets", Some("default"), secret));
        match got {
            Ok(_) => assert!(allowed, "n1 read {secret}"),
            Err(e) => {
                assert!(!allowed, "n1 could not read {secret}: {}", e.message);
                assert_eq!(e.code, 403);
                assert!(
                    e.message.starts_with(&format!(
                        "secrets \"{secret}\" is forbidden: User \"system:node:n1\" cannot get \
                         resource \"secrets\" in API group \"\" in the namespace \"default\""
                    )),
                    "{}",
                    e.message
                );
                assert!(
                    e.message
                        .contains("no relationship found between node 'n1' and this object"),
                    "{}",
                    e.message
                );
            }
        }
    }
    // The pod leaves: its secret is no longer n1's to read.
    api.run(
        None,
        ApiOp::Delete {
            resource: res("pods"),
            namespace: Some("default".into()),
            name: "a".into(),
            grace_period_seconds: Some(0),
            precondition_uid: None,
            precondition_resource_version: None,
            propagation_policy: None,
        },
    )
    .unwrap();
    let after = api.run(Some(&n1), get("secrets", Some("default"), "mine"));
    assert_eq!(after.map(|_| ()).map_err(|e| e.code), Err(403));
}

#[test]
fn a_node_changes_only_its_own_node_and_its_own_pods_status() {
    let mut api = Api::new();
    for n in ["n1", "n2"] {
        api.create("nodes", None, node(n));
    }
    api.create(
        "secrets",
        Some("default"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    );
    api.create("pods", Some("default"), pod_on("a", "n1", "s"));
    api.create("pods", Some("default"), pod_on("b", "n2", "s"));
    let n1 = UserInfo::node("n1");
    let status = |name: &str| ApiOp::Update {
        resource: res("pods"),
        namespace: Some("default".into()),
        name: name.into(),
        body: json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                     "status": {"phase": "Running"}}),
        part: Part::Status,
    };
    let node_status = |name: &str| ApiOp::Update {
        resource: res("nodes"),
        namespace: None,
        name: name.into(),
        body: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        part: Part::Status,
    };
    // (what, the op, the refusal's message, or None when allowed)
    let cases: Vec<(&str, ApiOp, Option<&str>)> = vec![
        ("own pod status", status("a"), None),
        (
            "another node's pod status",
            status("b"),
            Some(
                "node \"n1\" can only update pod status for pods with spec.nodeName set to itself",
            ),
        ),
        ("own node status", node_status("n1"), None),
        (
            "another node's status",
            node_status("n2"),
            Some("node \"n1\" is not allowed to modify node \"n2\""),
        ),
    ];
    for (what, op, refusal) in cases {
        let got = api.run(Some(&n1), op);
        match (got, refusal) {
            (Ok(_), None) => {}
            (Err(e), Some(why)) => {
                assert_eq!(e.code, 403, "{what}: {}", e.message);
                assert!(e.message.contains(why), "{what}: {}", e.message);
            }
            (Ok(_), Some(_)) => panic!("{what}: allowed"),
            (Err(e), None) => panic!("{what}: refused: {}", e.message),
        }
    }
}
