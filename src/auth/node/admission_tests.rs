//! Table-driven tests of NodeRestriction, after upstream's noderestriction/admission_test.go.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::admission::{admit, NodeAdmission, NodeLookup, Operation};
use crate::auth::UserInfo;

#[derive(Default)]
struct Objects {
    pods: BTreeMap<(String, String), Arc<Value>>,
    nodes: BTreeMap<String, Arc<Value>>,
}

impl NodeLookup for Objects {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn node(&self, name: &str) -> Option<Arc<Value>> {
        self.nodes.get(name).cloned()
    }
}

fn pod(name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}"),
                     "labels": {"app": "a"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}})
}

fn mirror_pod(name: &str, node: &str) -> Value {
    let mut p = pod(name, node);
    p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "hash"});
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
        "name": node, "uid": format!("uid-{node}"), "controller": true}]);
    p
}

fn node_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"),
                     "labels": {"kubernetes.io/hostname": name}},
        "spec": {}})
}

fn objects() -> Objects {
    let mut o = Objects::default();
    for (name, node) in [("p1", "n1"), ("p2", "n2"), ("unbound", "")] {
        o.pods
            .insert(("ns".into(), name.into()), Arc::new(pod(name, node)));
    }
    for n in ["n1", "n2"] {
        o.nodes.insert(n.into(), Arc::new(node_obj(n)));
    }
    o
}

/// One request: (operation, group, resource, subresource, namespace, name, old, new).
type Case<'a> = (
    Operation,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<Value>,
    Option<Value>,
    Result<(), &'a str>,
);

fn run(user: &UserInfo, cases: &[Case]) {
    let lookup = objects();
    for (i, (op, group, resource, sub, ns, name, old, new, want)) in cases.iter().enumerate() {
        let req = NodeAdmission {
            operation: *op,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            old: old.as_ref(),
            new: new.as_ref(),
            lookup: &lookup,
        };
        let got = admit(user, &req);
        match (want, &got) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(e)) => {
                assert_eq!(e.message, *msg, "case {i}");
                let code = if msg.ends_with("not found") { 404 } else { 403 };
                assert_eq!(e.code, code, "case {i}");
            }
            _ => panic!("case {i} ({op:?} {resource}/{sub} {name}): want {want:?}, got {got:?}"),
        }
    }
}

use Operation::{Create, Delete, Update};

#[test]
fn a_node_creates_only_clean_mirror_pods_bound_to_itself() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut p = mirror_pod("m", "n1");
        f(&mut p);
        Some(p)
    };
    let cases: Vec<Case> = vec![
        (Create, "", "pods", "", "ns", "m", None, Some(mirror_pod("m", "n1")), Ok(())),
        (Create, "", "pods", "", "ns", "m", None, Some(pod("m", "n1")),
            Err("pods \"m\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods")),
        (Create, "", "pods", "", "ns", "m", None, Some(mirror_pod("m", "n2")),
            Err("pods \"m\" is forbidden: node \"n1\" can only create pods with spec.nodeName set to itself")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| { p["metadata"].as_object_mut().unwrap().remove("ownerReferences"); }),
            Err("pods \"m\" is forbidden: node \"n1\" can only create pods with an owner reference set to itself")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["metadata"]["ownerReferences"][0]["name"] = json!("n2")),
            Err("pods \"m\" is forbidden: node \"n1\" can only create pods with an owner reference set to itself")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["metadata"]["ownerReferences"][0]["controller"] = json!(false)),
            Err("pods \"m\" is forbidden: node \"n1\" can only create pods with a controller owner reference set to itself")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(true)),
            Err("pods \"m\" is forbidden: node \"n1\" must not set blockOwnerDeletion on an owner reference")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["metadata"]["ownerReferences"][0]["uid"] = json!("stale")),
            Err("pods \"m\" is forbidden: node n1 UID mismatch: expected stale got uid-n1")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| {
                let owner = p["metadata"]["ownerReferences"][0].clone();
                p["metadata"]["ownerReferences"] = json!([owner.clone(), owner]);
            }),
            Err("pods \"m\" is forbidden: node \"n1\" can only create pods with a single owner reference set to itself")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["spec"]["serviceAccountName"] = json!("default")),
            Err("pods \"m\" is forbidden: node \"n1\" can not create pods that reference a service account")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["spec"]["volumes"] = json!([{"name": "v", "secret": {"secretName": "s"}}])),
            Err("pods \"m\" is forbidden: node \"n1\" can not create pods that reference secrets")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "c"}}])),
            Err("pods \"m\" is forbidden: node \"n1\" can not create pods that reference configmaps")),
        (Create, "", "pods", "", "ns", "m", None,
            with(&|p| p["spec"]["volumes"] = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}])),
            Err("pods \"m\" is forbidden: node \"n1\" can not create pods that reference persistentvolumeclaims")),
        (Update, "", "pods", "", "ns", "p1", Some(pod("p1", "n1")), Some(pod("p1", "n1")),
            Err("pods \"p1\" is forbidden: unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods")),
        (Update, "", "pods", "binding", "ns", "p1", None, Some(json!({"metadata": {"name": "p1"}})),
            Err("pods \"p1\" is forbidden: unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed")),
    ];
    run(&UserInfo::node("n1"), &cases);
}

#[test]
fn a_node_deletes_evicts_and_updates_the_status_of_its_own_pods() {
    let relabelled = {
        let mut p = pod("p1", "n1");
        p["metadata"]["labels"] = json!({"app": "b"});
        p
    };
    let cases: Vec<Case> = vec![
        (Delete, "", "pods", "", "ns", "p1", None, None, Ok(())),
        (Delete, "", "pods", "", "ns", "p2", None, None,
            Err("pods \"Unknown\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself")),
        (Delete, "", "pods", "", "ns", "unbound", None, None,
            Err("pods \"Unknown\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself")),
        (Delete, "", "pods", "", "ns", "gone", None, None, Err("pod \"gone\" not found")),
        (Update, "", "pods", "status", "ns", "p1", Some(pod("p1", "n1")), Some(pod("p1", "n1")), Ok(())),
        (Update, "", "pods", "status", "ns", "p2", Some(pod("p2", "n2")), Some(pod("p2", "n2")),
            Err("pods \"p2\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself")),
        (Update, "", "pods", "status", "ns", "p1", Some(pod("p1", "n1")), Some(relabelled),
            Err("pods \"p1\" is forbidden: node \"n1\" cannot update labels through pod status")),
        (Create, "", "pods", "status", "ns", "p1", None, Some(pod("p1", "n1")),
            Err("pods \"p1\" is forbidden: unexpected operation \"CREATE\"")),
        (Create, "", "pods", "eviction", "ns", "p1", None,
            Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p1", "namespace": "ns"}})),
            Ok(())),
        // The name comes from the Eviction when the path has none.
        (Create, "", "pods", "eviction", "ns", "", None,
            Some(json!({"kind": "Eviction", "metadata": {"name": "p2", "namespace": "ns"}})),
            Err("pods \"p2\" is forbidden: node n1 can only evict pods with spec.nodeName set to itself")),
        (Create, "", "pods", "eviction", "ns", "", None, Some(json!({"kind": "Eviction", "metadata": {}})),
            Err("pods \"Unknown\" is forbidden: could not determine pod from request data")),
        (Create, "", "pods", "eviction", "ns", "gone", None, Some(json!({"metadata": {"name": "gone"}})),
            Err("pod \"gone\" not found")),
    ];
    run(&UserInfo::node("n1"), &cases);
}

#[test]
fn a_node_writes_only_its_own_node_without_new_taints_or_restricted_labels() {
    let labelled = |labels: Value| {
        let mut n = node_obj("n1");
        n["metadata"]["labels"] = labels;
        Some(n)
    };
    let tainted = {
        let mut n = node_obj("n1");
        n["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
        Some(n)
    };
    let empty_taints = {
        let mut n = node_obj("n1");
        n["spec"]["taints"] = json!([]);
        Some(n)
    };
    let cases: Vec<Case> = vec![
        (Create, "", "nodes", "", "", "n1", None, Some(node_obj("n1")), Ok(())),
        (Create, "", "nodes", "", "", "", None, Some(node_obj("n2")),
            Err("nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")),
        (Update, "", "nodes", "", "", "n2", Some(node_obj("n2")), Some(node_obj("n2")),
            Err("nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")),
        (Update, "", "nodes", "status", "", "n2", Some(node_obj("n2")), Some(node_obj("n2")),
            Err("nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")),
        (Delete, "", "nodes", "", "", "n2", None, None,
            Err("nodes \"Unknown\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")),
        (Update, "", "nodes", "status", "", "n1", Some(node_obj("n1")), Some(node_obj("n1")), Ok(())),
        (Delete, "", "nodes", "", "", "n1", None, None, Ok(())),
        (Create, "", "nodes", "", "", "n1", None,
            labelled(json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "x",
                "foo.node.kubernetes.io/a": "b", "kubelet.kubernetes.io/x": "y",
                "topology.kubernetes.io/zone": "z", "example.com/team": "t"})),
            Ok(())),
        (Create, "", "nodes", "", "", "n1", None,
            labelled(json!({"node-restriction.kubernetes.io/pool": "a", "node-role.kubernetes.io/master": "",
                "a.k8s.io/b": "c", "example.com/team": "t"})),
            Err("nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: a.k8s.io/b, node-restriction.kubernetes.io/pool, node-role.kubernetes.io/master")),
        (Update, "", "nodes", "", "", "n1", labelled(json!({"node-role.kubernetes.io/master": ""})),
            labelled(json!({})),
            Err("nodes \"n1\" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/master")),
        // Unchanged restricted labels may stay.
        (Update, "", "nodes", "", "", "n1", labelled(json!({"node-role.kubernetes.io/master": ""})),
            labelled(json!({"node-role.kubernetes.io/master": "", "example.com/x": "1"})),
            Ok(())),
        (Update, "", "nodes", "", "", "n1", Some(node_obj("n1")), tainted.clone(),
            Err("nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints")),
        (Update, "", "nodes", "status", "", "n1", tainted, Some(node_obj("n1")),
            Err("nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints")),
        (Update, "", "nodes", "", "", "n1", Some(node_obj("n1")), empty_taints, Ok(())),
        (Create, "", "nodes", "", "", "n1", None,
            Some(json!({"metadata": {"name": "n1"}, "spec": {"configSource": {"configMap": {"name": "c"}}}})),
            Err("nodes \"n1\" is forbidden: node \"n1\" is not allowed to create pods with a non-nil configSource")),
    ];
    run(&UserInfo::node("n1"), &cases);
}

#[test]
fn a_node_touches_only_its_own_lease_csinode_and_pod_tokens() {
    let lease = |name: &str| {
        Some(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"}}),
        )
    };
    let token = |pod: &str, uid: &str| {
        Some(json!({"kind": "TokenRequest", "metadata": {},
        "spec": {"audiences": ["api"], "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}}}))
    };
    let cases: Vec<Case> = vec![
        (Create, "coordination.k8s.io", "leases", "", "kube-node-lease", "", None, lease("n1"), Ok(())),
        (Update, "coordination.k8s.io", "leases", "", "kube-node-lease", "n1", lease("n1"), lease("n1"), Ok(())),
        (Create, "coordination.k8s.io", "leases", "", "kube-node-lease", "", None, lease("n2"),
            Err("leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node")),
        (Delete, "coordination.k8s.io", "leases", "", "kube-node-lease", "n2", None, None,
            Err("leases.coordination.k8s.io \"Unknown\" is forbidden: can only access node lease with the same name as the requesting node")),
        (Update, "coordination.k8s.io", "leases", "", "default", "n1", lease("n1"), lease("n1"),
            Err("leases.coordination.k8s.io \"n1\" is forbidden: can only access leases in the \"kube-node-lease\" system namespace")),
        (Create, "storage.k8s.io", "csinodes", "", "", "", None, Some(json!({"metadata": {"name": "n1"}})), Ok(())),
        (Update, "storage.k8s.io", "csinodes", "", "", "n2", None, Some(json!({"metadata": {"name": "n2"}})),
            Err("csinodes.storage.k8s.io \"n2\" is forbidden: can only access CSINode with the same name as the requesting node")),
        (Create, "", "serviceaccounts", "token", "ns", "default", None, token("p1", "uid-p1"), Ok(())),
        (Create, "", "serviceaccounts", "token", "ns", "default", None, token("p2", "uid-p2"),
            Err("serviceaccounts \"Unknown\" is forbidden: node requested token bound to a pod scheduled on a different node")),
        (Create, "", "serviceaccounts", "token", "ns", "default", None, token("p1", "uid-old"),
            Err("serviceaccounts \"Unknown\" is forbidden: the UID in the bound object reference (uid-old) does not match the UID in record. The object might have been deleted and then recreated")),
        (Create, "", "serviceaccounts", "token", "ns", "default", None, token("p1", ""),
            Err("serviceaccounts \"Unknown\" is forbidden: node requested token with a pod binding without a uid")),
        (Create, "", "serviceaccounts", "token", "ns", "default", None,
            Some(json!({"kind": "TokenRequest", "spec": {"audiences": ["api"]}})),
            Err("serviceaccounts \"Unknown\" is forbidden: node requested token not bound to a pod")),
        (Create, "", "serviceaccounts", "token", "ns", "default", None, token("gone", "u"), Err("pod \"gone\" not found")),
        // Other writes are not NodeRestriction's (the authorizer refuses them).
        (Create, "", "serviceaccounts", "", "ns", "", None, Some(json!({"metadata": {"name": "x"}})), Ok(())),
        (Create, "", "events", "", "ns", "", None, Some(json!({"metadata": {"name": "e"}})), Ok(())),
        (Update, "", "persistentvolumeclaims", "", "ns", "c", None, Some(json!({"metadata": {"name": "c"}})),
            Err("persistentvolumeclaims \"c\" is forbidden: may only update PVC status")),
    ];
    run(&UserInfo::node("n1"), &cases);
}

#[test]
fn a_node_updates_only_the_capacity_and_conditions_of_a_claims_status() {
    let pvc = |rv: &str, phase: &str, capacity: &str| {
        json!({"metadata": {"name": "c", "namespace": "ns",
        "resourceVersion": rv}, "spec": {"resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": phase, "capacity": {"storage": capacity}}})
    };
    let cases: Vec<Case> = vec![
        (Update, "", "persistentvolumeclaims", "status", "ns", "c",
            Some(pvc("1", "Bound", "1Gi")), Some(pvc("", "Bound", "2Gi")), Ok(())),
        (Update, "", "persistentvolumeclaims", "status", "ns", "c",
            Some(pvc("1", "Bound", "1Gi")), Some(pvc("1", "Lost", "1Gi")),
            Err("persistentvolumeclaims \"c\" is forbidden: node \"n1\" is not allowed to update fields other than status.capacity and status.conditions: status.phase")),
    ];
    run(&UserInfo::node("n1"), &cases);
}

#[test]
fn other_users_pass_untouched_and_nameless_nodes_are_refused() {
    let lookup = objects();
    let new = pod("x", "n2");
    let req = NodeAdmission {
        operation: Create,
        group: "",
        resource: "pods",
        subresource: "",
        namespace: "ns",
        name: "x",
        old: None,
        new: Some(&new),
        lookup: &lookup,
    };
    for user in [
        UserInfo::apiserver(),
        UserInfo::service_account("kube-system", "daemon-set-controller"),
        UserInfo::new("system:node:n1", &["system:authenticated"]),
        UserInfo::anonymous(),
    ] {
        assert_eq!(admit(&user, &req), Ok(()), "{user:?}");
    }
    assert!(admit(&UserInfo::node("n1"), &req).is_err());
    let err = admit(&UserInfo::new("system:node:", &["system:nodes"]), &req).unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"x\" is forbidden: could not determine node from user \"system:node:\""
    );
}

/// (operation, resource, subresource, name, new, the pod wanted, whether the node is wanted)
type PrefetchCase<'a> = (
    Operation,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a Value>,
    Option<&'a str>,
    bool,
);

#[test]
fn prefetching_what_lookups_asks_gives_the_same_answers() {
    use super::admission::{lookups, NoLookup, Prefetched};
    let store = objects();
    let token = json!({"kind": "TokenRequest", "spec": {"boundObjectRef":
        {"apiVersion": "v1", "kind": "Pod", "name": "p2", "uid": "uid-p2"}}});
    let eviction = json!({"metadata": {"name": "p1"}});
    let mirror = mirror_pod("m", "n1");
    let cases: &[PrefetchCase] = &[
        (Delete, "pods", "", "p2", None, Some("p2"), false),
        (
            Create,
            "pods",
            "eviction",
            "",
            Some(&eviction),
            Some("p1"),
            false,
        ),
        (
            Create,
            "serviceaccounts",
            "token",
            "default",
            Some(&token),
            Some("p2"),
            false,
        ),
        (Create, "pods", "", "", Some(&mirror), None, true),
        (Update, "pods", "status", "p1", Some(&mirror), None, false),
    ];
    let user = UserInfo::node("n1");
    for (op, resource, sub, name, new, pod, node) in cases {
        let mut req = NodeAdmission {
            operation: *op,
            group: "",
            resource,
            subresource: sub,
            namespace: "ns",
            name,
            old: None,
            new: *new,
            lookup: &NoLookup,
        };
        let want = lookups(&user, &req);
        assert_eq!(
            want.pod,
            pod.map(|p| ("ns".to_string(), p.to_string())),
            "{resource}/{sub}"
        );
        assert_eq!(want.node.is_some(), *node, "{resource}/{sub}");
        let prefetched = Prefetched {
            pod: want
                .pod
                .clone()
                .and_then(|(ns, n)| store.pod(&ns, &n).map(|p| ((ns, n), p))),
            node: want
                .node
                .clone()
                .and_then(|n| store.node(&n).map(|v| (n, v))),
        };
        req.lookup = &prefetched;
        let with_prefetch = admit(&user, &req);
        req.lookup = &store;
        assert_eq!(with_prefetch, admit(&user, &req), "{resource}/{sub}");
    }
    assert_eq!(
        lookups(
            &UserInfo::apiserver(),
            &NodeAdmission {
                operation: Delete,
                group: "",
                resource: "pods",
                subresource: "",
                namespace: "ns",
                name: "p1",
                old: None,
                new: None,
                lookup: &NoLookup,
            }
        ),
        super::admission::Lookups::default()
    );
}

#[test]
fn a_node_requests_certificates_only_in_its_own_name() {
    use super::csr::tests::{CSR_N1, CSR_N2};
    let csr = |signer: &str, pem: &str| {
        Some(
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"signerName": signer, "request": crate::apiserver::protobuf::base64(pem.as_bytes()),
                     "usages": ["digital signature", "client auth"]}}),
        )
    };
    let client = "kubernetes.io/kube-apiserver-client-kubelet";
    let serving = "kubernetes.io/kubelet-serving";
    const G: &str = "certificates.k8s.io";
    const R: &str = "certificatesigningrequests";
    let cases: Vec<Case> = vec![
        (Create, G, R, "", "", "", None, csr(client, CSR_N1), Ok(())),
        (Create, G, R, "", "", "", None, csr(serving, CSR_N1), Ok(())),
        (Create, G, R, "", "", "", None, csr(client, CSR_N2),
            Err("certificatesigningrequests.certificates.k8s.io \"csr-\" is forbidden: can only create a node CSR with CN=system:node:n1")),
        (Create, G, R, "", "", "", None, csr(serving, CSR_N2),
            Err("certificatesigningrequests.certificates.k8s.io \"csr-\" is forbidden: can only create a node CSR with CN=system:node:n1")),
        (Create, G, R, "", "", "", None, csr(client, "not a pem"),
            Err("certificatesigningrequests.certificates.k8s.io \"csr-\" is forbidden: unable to parse csr: PEM block type must be CERTIFICATE REQUEST")),
        // Other signers are the signer's to check.
        (Create, G, R, "", "", "", None, csr("example.com/custom", CSR_N2), Ok(())),
        (Update, G, R, "approval", "", "csr-1", None, csr(client, CSR_N2), Ok(())),
    ];
    run(&UserInfo::node("n1"), &cases);
}
