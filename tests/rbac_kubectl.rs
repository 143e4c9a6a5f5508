//! End-to-end RBAC with the real kubectl against `gantry server`: RBAC objects applied with
//! `kubectl apply` and `kubectl create rolebinding`, `kubectl auth can-i` (through
//! impersonation, `--as`/`--as-group`) answering as upstream's RBAC does, `--list`, and 403s.

mod common;

use common::GantryServer;

const POLICY: &str = "apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dev-view, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: dev}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: team}
rules:
- {apiGroups: [apps], resources: [deployments], verbs: [get, list, create, update, patch]}
- {apiGroups: [apps], resources: [deployments/scale], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-deployer, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects: [{kind: ServiceAccount, name: ci, namespace: team}]
";

#[test]
fn kubectl_auth_can_i_answers_as_upstream_rbac() {
    let s = GantryServer::start();
    let path = s.dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let path = path.display().to_string();
    s.kubectl_ok(&["apply", "-f", &path]);
    // Applying again is a no-op (server-side the objects are unchanged).
    s.kubectl_ok(&["apply", "-f", &path]);
    // A generator command (protobuf body).
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "ed-edit",
        "--clusterrole=edit",
        "--user=ed",
        "-n",
        "team",
    ]);
    let bindings = s.kubectl_ok(&["get", "rolebindings", "-n", "team", "-o", "wide"]);
    assert!(
        bindings.contains("ClusterRole/edit") && bindings.contains("team/ci"),
        "{bindings}"
    );
    let roles = s.kubectl_ok(&["get", "clusterroles"]);
    for r in [
        "cluster-admin",
        "system:node",
        "system:controller:replicaset-controller",
    ] {
        assert!(roles.contains(r), "{r}: {roles}");
    }
    let e = s.kubectl(&[
        "create",
        "rolebinding",
        "bad",
        "--clusterrole=view",
        "-n",
        "team",
    ]);
    assert_eq!(e.0, 0, "a binding without subjects is valid: {}", e.2);

    let ci = "system:serviceaccount:team:ci";
    let rs = "system:serviceaccount:kube-system:replicaset-controller";
    // (user, groups, args, allowed) — upstream's answers for the bootstrap policy above.
    let cases: &[(&str, &[&str], &[&str], bool)] = &[
        ("dev", &[], &["list", "pods", "-n", "team"], true),
        (
            "dev",
            &[],
            &["watch", "deployments.apps", "-n", "team"],
            true,
        ),
        (
            "dev",
            &[],
            &["get", "pods", "--subresource=log", "-n", "team"],
            true,
        ),
        ("dev", &[], &["create", "pods", "-n", "team"], false),
        ("dev", &[], &["get", "secrets", "-n", "team"], false),
        ("dev", &[], &["list", "pods", "-n", "other"], false),
        ("dev", &[], &["list", "nodes"], false),
        (
            "dev",
            &[],
            &["create", "selfsubjectaccessreviews.authorization.k8s.io"],
            true,
        ),
        ("dev", &[], &["get", "/healthz"], true),
        ("dev", &[], &["get", "/metrics"], false),
        ("ed", &[], &["create", "pods", "-n", "team"], true),
        ("ed", &[], &["get", "secrets", "-n", "team"], true),
        (
            "ed",
            &[],
            &["delete", "deployments.apps", "-n", "team"],
            true,
        ),
        (
            "ed",
            &[],
            &[
                "create",
                "rolebindings.rbac.authorization.k8s.io",
                "-n",
                "team",
            ],
            false,
        ),
        (
            "ed",
            &[],
            &["impersonate", "serviceaccounts", "-n", "team"],
            true,
        ),
        ("ed", &[], &["create", "pods", "-n", "other"], false),
        (ci, &[], &["create", "deployments.apps", "-n", "team"], true),
        (
            ci,
            &[],
            &["delete", "deployments.apps", "-n", "team"],
            false,
        ),
        (
            ci,
            &[],
            &[
                "update",
                "deployments.apps",
                "--subresource=scale",
                "-n",
                "team",
            ],
            true,
        ),
        (ci, &[], &["list", "pods", "-n", "team"], false),
        (
            "system:kube-scheduler",
            &[],
            &["create", "pods", "--subresource=binding", "-n", "default"],
            true,
        ),
        ("system:kube-scheduler", &[], &["delete", "nodes"], false),
        (rs, &[], &["create", "pods", "-n", "team"], true),
        (rs, &[], &["delete", "secrets", "-n", "team"], false),
        ("nobody", &["system:masters"], &["delete", "nodes"], true),
        ("nobody", &["devs"], &["get", "/version"], true),
        ("nobody", &["devs"], &["list", "pods"], false),
    ];
    for (user, groups, args, allowed) in cases {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        let as_user = format!("--as={user}");
        full.push(&as_user);
        let as_groups: Vec<String> = groups.iter().map(|g| format!("--as-group={g}")).collect();
        full.extend(as_groups.iter().map(String::as_str));
        let (code, out, err) = s.kubectl(&full);
        let want = if *allowed { "yes" } else { "no" };
        assert_eq!(out.trim(), want, "kubectl {full:?}: {err}");
        assert_eq!(code, if *allowed { 0 } else { 1 }, "kubectl {full:?}");
    }

    // --list: the rules that apply to dev in team.
    let list = s.kubectl_ok(&["auth", "can-i", "--list", "--as=dev", "-n", "team"]);
    let row = |resource: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .unwrap_or_else(|| panic!("{resource} missing from\n{list}"))
            .to_string()
    };
    assert!(row("pods").ends_with("[get list watch]"), "{list}");
    assert!(
        row("selfsubjectaccessreviews.authorization.k8s.io").ends_with("[create]"),
        "{list}"
    );
    assert!(list.contains("[/healthz]"), "{list}");
    assert!(!list.contains("secrets "), "{list}");
    let list = s.kubectl_ok(&["auth", "can-i", "--list", "--as=dev", "-n", "other"]);
    assert!(!list.lines().any(|l| l.starts_with("pods ")), "{list}");

    // What a refused user sees.
    let (code, _, err) = s.kubectl(&["get", "pods", "-n", "other", "--as=dev"]);
    assert_ne!(code, 0);
    assert!(err.contains("Error from server (Forbidden): pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\""), "{err}");
    let (code, _, err) = s.kubectl(&["get", "nodes", "--as=dev"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "User \"dev\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        ),
        "{err}"
    );
    // Impersonating needs the impersonate verb: dev may not impersonate.
    let (code, _, err) = s.kubectl(&["get", "pods", "-n", "team", "--as=ed", "--as-group=x"]);
    assert_eq!(code, 0, "the admin may impersonate anyone: {err}");
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "dev-imp",
        "--clusterrole=view",
        "--user=dev",
    ]);
    let (code, out, err) = s.kubectl(&["auth", "can-i", "list", "pods", "-n", "other", "--as=dev"]);
    assert_eq!((code, out.trim()), (0, "yes"), "{err}");
}
