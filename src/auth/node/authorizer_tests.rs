//! Table-driven tests of the Node authorizer, after upstream's node_authorizer_test.go.

use serde_json::{json, Value};

use super::authorizer::{NodeAuthorizer, NodeDecision, NodeRequest};
use crate::api::registry;
use crate::apiserver::FieldSelector;
use crate::auth::UserInfo;

fn pod(ns: &str, name: &str, node: &str, secret: &str, cm: &str, claim: &str, sa: &str) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}")},
        "spec": {
            "nodeName": node,
            "serviceAccountName": sa,
            "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": cm}}]}],
            "volumes": [
                {"name": "s", "secret": {"secretName": secret}},
                {"name": "d", "persistentVolumeClaim": {"claimName": claim}}
            ]
        }
    })
}

/// node1 runs ns/p1 (secret s1, configmap c1, claim claim1 -> pv1 -> secret pvs1, SA sa1);
/// node2 runs ns/p2 (s2, c2, claim2, SA sa2); ns/pending is not scheduled.
fn cluster() -> NodeAuthorizer {
    let mut a = NodeAuthorizer::new();
    a.observe(
        "",
        "pods",
        None,
        Some(&pod("ns", "p1", "node1", "s1", "c1", "claim1", "sa1")),
    );
    a.observe(
        "",
        "pods",
        None,
        Some(&pod("ns", "p2", "node2", "s2", "c2", "claim2", "sa2")),
    );
    a.observe(
        "",
        "pods",
        None,
        Some(&pod("ns", "pending", "", "s3", "c3", "claim3", "sa3")),
    );
    a.observe(
        "",
        "persistentvolumes",
        None,
        Some(&json!({"metadata": {"name": "pv1"}, "spec": {
            "claimRef": {"namespace": "ns", "name": "claim1"},
            "csi": {"driver": "d", "nodeStageSecretRef": {"name": "pvs1"}}}})),
    );
    a.observe(
        "storage.k8s.io",
        "volumeattachments",
        None,
        Some(&json!({"metadata": {"name": "va1"}, "spec": {"nodeName": "node1"}})),
    );
    a
}

fn req<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    ns: &'a str,
    name: &'a str,
) -> NodeRequest<'a> {
    NodeRequest {
        verb,
        api_group: group,
        resource,
        namespace: ns,
        name,
        ..NodeRequest::default()
    }
}

fn sub<'a>(mut r: NodeRequest<'a>, subresource: &'a str) -> NodeRequest<'a> {
    r.subresource = subresource;
    r
}

const ALLOW: Option<&str> = Some("");
const NO_REL: Option<&str> = Some("no relationship found between node 'node1' and this object");

/// `None`: no opinion without a reason; `Some("")`: allowed; `Some(reason)`: no opinion with it.
fn check(a: &NodeAuthorizer, user: &UserInfo, cases: &[(NodeRequest, Option<&str>)]) {
    for (r, want) in cases {
        let got = a.authorize(user, r);
        let want = match want {
            Some("") => NodeDecision::Allow,
            Some(reason) => NodeDecision::NoOpinion(reason.to_string()),
            None => NodeDecision::NoOpinion(String::new()),
        };
        assert_eq!(got, want, "{} {r:?}", user.name);
    }
}

#[test]
fn a_node_reads_only_what_its_pods_use() {
    let a = cluster();
    let node1 = UserInfo::node("node1");
    let cases = [
        (req("get", "", "secrets", "ns", "s1"), ALLOW),
        (req("get", "", "secrets", "ns", "s2"), NO_REL),
        (req("get", "", "secrets", "ns", "s3"), NO_REL),
        (req("get", "", "secrets", "other", "s1"), NO_REL),
        (req("get", "", "secrets", "ns", "unknown"), NO_REL),
        (req("get", "", "configmaps", "ns", "c1"), ALLOW),
        (req("get", "", "configmaps", "ns", "c2"), NO_REL),
        (
            req("get", "", "persistentvolumeclaims", "ns", "claim1"),
            ALLOW,
        ),
        (
            req("get", "", "persistentvolumeclaims", "ns", "claim2"),
            NO_REL,
        ),
        (req("get", "", "persistentvolumes", "", "pv1"), ALLOW),
        (req("get", "", "secrets", "ns", "pvs1"), ALLOW),
        (
            req("get", "storage.k8s.io", "volumeattachments", "", "va1"),
            ALLOW,
        ),
        (
            req("list", "storage.k8s.io", "volumeattachments", "", ""),
            Some("can only get individual resources of this type"),
        ),
        (
            req("list", "", "persistentvolumes", "", ""),
            Some("can only get individual resources of this type"),
        ),
        (
            req("update", "", "secrets", "ns", "s1"),
            Some("can only read resources of this type"),
        ),
        (
            req("list", "", "secrets", "ns", ""),
            Some("No Object name found"),
        ),
        (
            req("get", "", "secrets", "", "s1"),
            Some("can only read namespaced object of this type"),
        ),
        (
            sub(
                req("get", "", "persistentvolumeclaims", "ns", "claim1"),
                "status",
            ),
            Some("can only get/update/patch this type"),
        ),
        (
            sub(
                req("patch", "", "persistentvolumeclaims", "ns", "claim1"),
                "status",
            ),
            ALLOW,
        ),
        (
            sub(
                req("patch", "", "persistentvolumeclaims", "ns", "claim2"),
                "status",
            ),
            NO_REL,
        ),
        // A watch of one object by name (metadata.name field selector).
        (
            NodeRequest {
                field_selector_name: Some("s1"),
                ..req("watch", "", "secrets", "ns", "")
            },
            ALLOW,
        ),
        (
            NodeRequest {
                field_selector_name: Some("s2"),
                ..req("watch", "", "secrets", "ns", "")
            },
            NO_REL,
        ),
    ];
    check(&a, &node1, &cases);
}

#[test]
fn a_node_gets_tokens_leases_and_csinodes_of_its_own() {
    let a = cluster();
    let node1 = UserInfo::node("node1");
    let cases = [
        (
            sub(req("create", "", "serviceaccounts", "ns", "sa1"), "token"),
            ALLOW,
        ),
        (
            sub(req("create", "", "serviceaccounts", "ns", "sa2"), "token"),
            NO_REL,
        ),
        (
            sub(req("get", "", "serviceaccounts", "ns", "sa1"), "token"),
            Some("can only create tokens for individual service accounts"),
        ),
        (
            req("create", "", "serviceaccounts", "ns", "sa1"),
            Some("can only create token subresource of serviceaccount"),
        ),
        (
            req(
                "get",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "node1",
            ),
            ALLOW,
        ),
        (
            req(
                "update",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "node1",
            ),
            ALLOW,
        ),
        // The name of a create is NodeRestriction's to check.
        (
            req(
                "create",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "",
            ),
            ALLOW,
        ),
        (
            req(
                "update",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "node2",
            ),
            Some("can only access node lease with the same name as the requesting node"),
        ),
        (
            req(
                "get",
                "coordination.k8s.io",
                "leases",
                "kube-system",
                "node1",
            ),
            Some("can only access leases in the \"kube-node-lease\" system namespace"),
        ),
        (
            req(
                "list",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "",
            ),
            Some("can only get, create, update, patch, or delete a node lease"),
        ),
        (
            req("patch", "storage.k8s.io", "csinodes", "", "node1"),
            ALLOW,
        ),
        (
            req("patch", "storage.k8s.io", "csinodes", "", "node2"),
            Some("can only access CSINode with the same name as the requesting node"),
        ),
    ];
    check(&a, &node1, &cases);
}

#[test]
fn a_node_reads_its_own_node_and_lists_only_its_pods() {
    let a = cluster();
    let node1 = UserInfo::node("node1");
    let cases = [
        (req("get", "", "nodes", "", "node1"), ALLOW),
        (
            req("get", "", "nodes", "", "node2"),
            Some("node 'node1' cannot read 'node2', only its own Node object"),
        ),
        (
            req("list", "", "nodes", "", ""),
            Some("node 'node1' cannot read all nodes, only its own Node object"),
        ),
        (
            NodeRequest {
                field_selector_name: Some("node1"),
                ..req("watch", "", "nodes", "", "")
            },
            ALLOW,
        ),
        (req("create", "", "nodes", "", ""), ALLOW),
        (req("update", "", "nodes", "", "node2"), ALLOW),
        (sub(req("patch", "", "nodes", "", "node1"), "status"), ALLOW),
        (req("delete", "", "nodes", "", "node1"), None),
        (req("get", "", "pods", "ns", "p1"), ALLOW),
        (req("get", "", "pods", "ns", "p2"), NO_REL),
        (
            NodeRequest {
                field_selector_node_name: Some("node1"),
                ..req("watch", "", "pods", "", "")
            },
            ALLOW,
        ),
        (
            NodeRequest {
                field_selector_node_name: Some("node2"),
                ..req("list", "", "pods", "", "")
            },
            Some("can only list/watch pods with spec.nodeName field selector"),
        ),
        (
            req("list", "", "pods", "", ""),
            Some("can only list/watch pods with spec.nodeName field selector"),
        ),
        (req("create", "", "pods", "ns", ""), ALLOW),
        (sub(req("update", "", "pods", "ns", "p2"), "status"), ALLOW),
        (
            sub(req("create", "", "pods", "ns", "p2"), "eviction"),
            ALLOW,
        ),
        (sub(req("get", "", "pods", "ns", "p1"), "log"), None),
        (req("update", "", "pods", "ns", "p1"), None),
        // The static rules.
        (req("list", "", "services", "", ""), ALLOW),
        (req("create", "", "events", "ns", ""), ALLOW),
        (
            req(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                "",
            ),
            ALLOW,
        ),
        (
            req(
                "create",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "",
                "",
            ),
            ALLOW,
        ),
        (req("list", "", "namespaces", "", ""), None),
        (req("create", "", "services", "ns", ""), None),
        (req("get", "", "", "", ""), None),
    ];
    check(&a, &node1, &cases);
}

#[test]
fn non_nodes_get_no_opinion_and_nameless_nodes_a_reason() {
    let a = cluster();
    let r = req("get", "", "secrets", "ns", "s1");
    for user in [
        UserInfo::apiserver(),
        UserInfo::anonymous(),
        UserInfo::service_account("ns", "sa1"),
        UserInfo::new("system:node:node1", &["system:authenticated"]),
        UserInfo::new("node1", &["system:nodes"]),
    ] {
        assert_eq!(
            a.authorize(&user, &r),
            NodeDecision::NoOpinion(String::new()),
            "{user:?}"
        );
    }
    assert_eq!(a.rules_for(&UserInfo::service_account("ns", "sa1")), None);
    assert_eq!(
        a.rules_for(&UserInfo::node("node1")),
        Some("node authorizer does not support user rule resolution")
    );
    let nameless = UserInfo::new("system:node:", &["system:nodes"]);
    assert_eq!(
        a.authorize(&nameless, &r),
        NodeDecision::NoOpinion("unknown node for user \"system:node:\"".into())
    );
}

#[test]
fn access_ends_when_the_pod_is_deleted_or_moved() {
    let mut a = cluster();
    let node1 = UserInfo::node("node1");
    let node3 = UserInfo::node("node3");
    let secret = req("get", "", "secrets", "ns", "s1");
    assert!(a.authorize(&node1, &secret).is_allowed());
    let p1 = pod("ns", "p1", "node1", "s1", "c1", "claim1", "sa1");
    a.observe("", "pods", Some(&p1), None);
    assert!(!a.authorize(&node1, &secret).is_allowed());
    assert!(!a
        .authorize(&node1, &req("get", "", "persistentvolumes", "", "pv1"))
        .is_allowed());
    // Recreated under the same name, bound to node3.
    let mut moved = pod("ns", "p1", "node3", "s1", "c1", "claim1", "sa1");
    moved["metadata"]["uid"] = json!("uid-p1-again");
    a.observe("", "pods", None, Some(&moved));
    assert!(!a.authorize(&node1, &secret).is_allowed());
    assert!(a.authorize(&node3, &secret).is_allowed());
    // A pod bound later (the scheduler's binding) gains its node access then.
    let pending = pod("ns", "pending", "", "s3", "c3", "claim3", "sa3");
    let bound = pod("ns", "pending", "node1", "s3", "c3", "claim3", "sa3");
    let s3 = req("get", "", "secrets", "ns", "s3");
    assert!(!a.authorize(&node1, &s3).is_allowed());
    a.observe("", "pods", Some(&pending), Some(&bound));
    assert!(a.authorize(&node1, &s3).is_allowed());
}

#[test]
fn field_selectors_fill_the_request() {
    let pods = registry::by_plural("", "pods").unwrap();
    let sel = FieldSelector::parse(pods, "spec.nodeName=node1,metadata.name!=x").unwrap();
    let r = req("list", "", "pods", "", "").with_field_selector(&sel);
    assert_eq!(r.field_selector_node_name, Some("node1"));
    assert_eq!(r.field_selector_name, None);
    assert!(cluster()
        .authorize(&UserInfo::node("node1"), &r)
        .is_allowed());
    let sel = FieldSelector::parse(pods, "metadata.name==p1").unwrap();
    let r = req("watch", "", "pods", "ns", "").with_field_selector(&sel);
    assert_eq!(r.field_selector_name, Some("p1"));
    assert!(cluster()
        .authorize(&UserInfo::node("node1"), &r)
        .is_allowed());
}

#[test]
fn the_same_events_give_the_same_answers() {
    // A scripted history with deletes and moves, replayed twice.
    let history = |a: &mut NodeAuthorizer| {
        for i in 0..40 {
            let node = format!("node{}", i % 4);
            let p = pod(
                "ns",
                &format!("p{i}"),
                &node,
                &format!("s{}", i % 7),
                "c",
                "claim",
                "sa",
            );
            a.observe("", "pods", None, Some(&p));
            if i % 5 == 0 {
                a.observe("", "pods", Some(&p), None);
            }
        }
    };
    let (mut a, mut b) = (NodeAuthorizer::new(), NodeAuthorizer::new());
    history(&mut a);
    history(&mut b);
    assert_eq!(a.graph(), b.graph());
    let mut answers = Vec::new();
    for n in 0..4 {
        let user = UserInfo::node(&format!("node{n}"));
        for s in 0..7 {
            let name = format!("s{s}");
            let r = req("get", "", "secrets", "ns", &name);
            let (x, y) = (a.authorize(&user, &r), b.authorize(&user, &r));
            assert_eq!(x, y);
            answers.push(x.is_allowed());
        }
    }
    // Not vacuous: some secrets are reachable and some are not.
    assert!(answers.contains(&true) && answers.contains(&false));
}
