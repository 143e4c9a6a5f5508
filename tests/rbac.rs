//! RBAC in the apiserver core on MemStore: the four kinds served with upstream's validation,
//! the authorizer, the bootstrap policy, escalation prevention and the access reviews.

use std::sync::Arc;

use futures::FutureExt;
use gantry::api::registry::{by_plural, ResourceInfo, RBAC_GROUP};
use gantry::api::status::ApiError;
use gantry::apiserver::{ApiServer, Part, RequestContext};
use gantry::auth::UserInfo;
use gantry::store::mem::MemStore;
use serde_json::{json, Value};

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

fn rbac(plural: &str) -> &'static ResourceInfo {
    by_plural(RBAC_GROUP, plural).unwrap()
}

struct Api {
    api: ApiServer<MemStore>,
    n: u64,
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

    fn ctx(&mut self) -> RequestContext {
        self.n += 1;
        ctx(self.n)
    }

    fn create(
        &mut self,
        res: &ResourceInfo,
        ns: Option<&str>,
        body: Value,
    ) -> Result<Value, ApiError> {
        let c = self.ctx();
        ready(self.api.create(res, ns, body, &c)).map(Arc::unwrap_or_clone)
    }

    fn update(
        &mut self,
        res: &ResourceInfo,
        ns: Option<&str>,
        body: Value,
    ) -> Result<Value, ApiError> {
        let c = self.ctx();
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        ready(self.api.update(res, ns, &name, body, Part::Main, &c)).map(Arc::unwrap_or_clone)
    }
}

fn ctx(n: u64) -> RequestContext {
    RequestContext::new(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        format!("00000000-0000-4000-8000-{n:012}"),
        n * 7919,
    )
}

fn user(name: &str, groups: &[&str]) -> Arc<UserInfo> {
    Arc::new(UserInfo::new(name, groups))
}

/// k8s: pkg/apis/rbac/validation — 422 Invalid with upstream's field paths.
#[test]
fn rbac_kinds_are_served_and_validated() {
    let mut a = Api::new();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": "pod-reader"},
                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    let created = a.create(rbac("roles"), Some("default"), role).unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    let bad = json!({"metadata": {"name": "bad"}, "rules": [{"resources": ["pods"]}]});
    let e = a.create(rbac("roles"), Some("default"), bad).unwrap_err();
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Role \"bad\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[0].apiGroups: Required value: resource rules must supply at least one api group]"
    );
    // A binding: the roleRef's apiGroup and the subjects' are defaulted; names may hold colons.
    let binding = json!({"metadata": {"name": "system:read"},
                         "roleRef": {"kind": "Role", "name": "pod-reader"},
                         "subjects": [{"kind": "User", "name": "dev"}]});
    let b = a
        .create(rbac("rolebindings"), Some("default"), binding)
        .unwrap();
    assert_eq!(b["roleRef"]["apiGroup"], RBAC_GROUP);
    assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
    let mut changed = b.clone();
    changed["roleRef"]["name"] = json!("other");
    let e = a
        .update(rbac("rolebindings"), Some("default"), changed)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert!(e.message.contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"), "{}", e.message);
    let crb = json!({"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"},
                     "subjects": [{"kind": "ServiceAccount", "name": "default"}]});
    let e = a
        .create(rbac("clusterrolebindings"), None, crb)
        .unwrap_err();
    let fields: Vec<&str> = e
        .details
        .as_ref()
        .unwrap()
        .causes
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["roleRef.kind", "subjects[0].namespace"]);
}

/// Every RBAC write the core commits reaches the authorizer's index at once.
#[test]
fn committed_rbac_writes_reach_the_authorizer() {
    use gantry::auth::rbac::Attributes;
    let mut a = Api::new();
    let dev = UserInfo::new("dev", &["system:authenticated"]);
    let list = Attributes::resource("list", "", "configmaps", "team", "");
    assert!(!a.api.authorize(&dev, &list).allowed());
    a.create(
        by_plural("", "namespaces").unwrap(),
        None,
        json!({"metadata": {"name": "team"}}),
    )
    .unwrap();
    a.create(
        rbac("roles"),
        Some("team"),
        json!({"metadata": {"name": "cm"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
    )
    .unwrap();
    a.create(
        rbac("rolebindings"),
        Some("team"),
        json!({"metadata": {"name": "dev-cm"}, "roleRef": {"kind": "Role", "name": "cm"},
               "subjects": [{"kind": "User", "name": "dev"}]}),
    )
    .unwrap();
    assert!(a.api.authorize(&dev, &list).allowed());
    let e = a
        .api
        .check(
            &dev,
            &Attributes::resource("list", "", "configmaps", "other", ""),
        )
        .unwrap_err();
    assert_eq!(e.message, "configmaps is forbidden: User \"dev\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"other\"");
    let c = a.ctx();
    ready(a.api.delete(
        rbac("rolebindings"),
        Some("team"),
        "dev-cm",
        &Default::default(),
        &c,
    ))
    .unwrap();
    assert!(!a.api.authorize(&dev, &list).allowed());
    // A second apiserver over the same store loads what is stored.
    let store = Arc::new(MemStore::default());
    for (plural, body) in [
        (
            "roles",
            json!({"metadata": {"name": "cm", "namespace": "team"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
        ),
        (
            "rolebindings",
            json!({"metadata": {"name": "b", "namespace": "team"}, "roleRef": {"kind": "Role", "name": "cm"}, "subjects": [{"kind": "User", "name": "dev"}]}),
        ),
    ] {
        // Straight to the store's keys as the first apiserver writes them (no namespace check).
        let res = rbac(plural);
        let key = res.storage_key(Some("team"), body["metadata"]["name"].as_str().unwrap());
        ready(gantry::store::Store::create(
            &*store,
            &key,
            serde_json::to_vec(&body).unwrap().into(),
        ))
        .unwrap();
    }
    let second = ApiServer::new(store.clone());
    assert!(!second.authorize(&dev, &list).allowed());
    ready(second.load_rbac()).unwrap();
    assert!(second.authorize(&dev, &list).allowed());
}

fn get(a: &Api, plural: &str, name: &str) -> Value {
    ready(a.api.get(rbac(plural), None, name)).unwrap()
}

/// k8s: bootstrappolicy — the roles and bindings exist after the start, view/edit/admin hold
/// their aggregated rules, and a restart reconciles without undoing what an owner kept.
#[test]
fn the_bootstrap_policy_is_created_and_reconciled() {
    let mut a = Api::new();
    let admin = get(&a, "clusterroles", "cluster-admin");
    assert_eq!(
        admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
        "true"
    );
    assert_eq!(
        admin["metadata"]["labels"]["kubernetes.io/bootstrapping"],
        "rbac-defaults"
    );
    let b = get(&a, "clusterrolebindings", "cluster-admin");
    assert_eq!(
        b["subjects"],
        json!([{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:masters"}])
    );
    let b = get(
        &a,
        "clusterrolebindings",
        "system:controller:replicaset-controller",
    );
    assert_eq!(
        b["subjects"],
        json!([{"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"}])
    );
    // view, edit and admin hold the rules of what aggregates to them: pods/log read in view,
    // view's rules in edit, roles in admin.
    let has = |role: &Value, verb: &str, resource: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["verbs"].as_array().unwrap().iter().any(|v| v == verb)
                && r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
        })
    };
    let view = get(&a, "clusterroles", "view");
    assert!(has(&view, "get", "pods/log") && !has(&view, "create", "pods"));
    let edit = get(&a, "clusterroles", "edit");
    assert!(
        has(&edit, "create", "pods")
            && has(&edit, "get", "pods/log")
            && !has(&edit, "create", "roles")
    );
    let adm = get(&a, "clusterroles", "admin");
    assert!(has(&adm, "create", "roles") && has(&adm, "create", "deployments"));
    // An owner's changes: a rule removed from system:discovery comes back; a protected role
    // keeps its edit.
    let mut discovery = get(&a, "clusterroles", "system:discovery");
    discovery["rules"] = json!([]);
    a.update(rbac("clusterroles"), None, discovery).unwrap();
    let mut basic = get(&a, "clusterroles", "system:basic-user");
    basic["rules"] = json!([]);
    basic["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] =
        json!("false");
    a.update(rbac("clusterroles"), None, basic).unwrap();
    let mut n = 5000;
    ready(a.api.bootstrap(|| {
        n += 1;
        ctx(n)
    }))
    .unwrap();
    // Upstream adds the missing rules broken down: one per URL and verb.
    assert_eq!(
        get(&a, "clusterroles", "system:discovery")["rules"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert_eq!(
        get(&a, "clusterroles", "system:basic-user")["rules"],
        json!([])
    );
}

fn ns(a: &mut Api, name: &str) {
    a.create(
        by_plural("", "namespaces").unwrap(),
        None,
        json!({"metadata": {"name": name}}),
    )
    .unwrap();
}

fn bind(a: &mut Api, namespace: &str, role: &str, user: &str) {
    a.create(
        rbac("rolebindings"),
        Some(namespace),
        json!({"metadata": {"name": format!("{user}-{role}")},
               "roleRef": {"kind": "ClusterRole", "name": role},
               "subjects": [{"kind": "User", "name": user}]}),
    )
    .unwrap();
}

/// A component-style request (`ApiServer::execute`) as `who`.
fn exec_as(
    a: &mut Api,
    who: &Arc<UserInfo>,
    op: gantry::component::ApiOp,
) -> Result<Value, ApiError> {
    let c = a.ctx().as_user(who.clone());
    ready(a.api.execute(op, &c)).map(Arc::unwrap_or_clone)
}

fn create_op(plural: &str, namespace: &str, body: Value) -> gantry::component::ApiOp {
    let resource = by_plural("", plural)
        .or_else(|| by_plural(RBAC_GROUP, plural))
        .unwrap();
    gantry::component::ApiOp::Create {
        resource,
        namespace: Some(namespace.into()),
        body,
    }
}

fn get_op(plural: &str, namespace: &str, name: &str) -> gantry::component::ApiOp {
    gantry::component::ApiOp::Get {
        resource: by_plural("", plural).unwrap(),
        namespace: Some(namespace.into()),
        name: name.into(),
    }
}

/// The issue's users: `viewer` bound to view and `editor` to edit in `team` can read there,
/// only the editor can write, and neither can do anything in another namespace.
#[test]
fn view_and_edit_apply_in_their_namespace_only() {
    let mut a = Api::new();
    ns(&mut a, "team");
    ns(&mut a, "other");
    bind(&mut a, "team", "view", "viewer");
    bind(&mut a, "team", "edit", "editor");
    let cm = |name: &str| json!({"metadata": {"name": name}, "data": {"k": "v"}});
    a.create(
        by_plural("", "configmaps").unwrap(),
        Some("team"),
        cm("seed"),
    )
    .unwrap();
    let viewer = user("viewer", &["system:authenticated"]);
    let editor = user("editor", &["system:authenticated"]);
    assert!(exec_as(&mut a, &viewer, get_op("configmaps", "team", "seed")).is_ok());
    let e = exec_as(&mut a, &viewer, create_op("configmaps", "team", cm("x"))).unwrap_err();
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert_eq!(e.message, "configmaps is forbidden: User \"viewer\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\"");
    assert!(exec_as(&mut a, &editor, create_op("configmaps", "team", cm("x"))).is_ok());
    for who in [&viewer, &editor] {
        let e = exec_as(&mut a, who, get_op("configmaps", "other", "seed")).unwrap_err();
        assert_eq!(e.code, 403, "{}", who.name);
        let e = exec_as(&mut a, who, create_op("configmaps", "other", cm("y"))).unwrap_err();
        assert_eq!(e.code, 403, "{}", who.name);
    }
    // view reads no Secrets; edit does.
    a.create(
        by_plural("", "secrets").unwrap(),
        Some("team"),
        json!({"metadata": {"name": "s"}}),
    )
    .unwrap();
    assert_eq!(
        exec_as(&mut a, &viewer, get_op("secrets", "team", "s"))
            .unwrap_err()
            .code,
        403
    );
    assert!(exec_as(&mut a, &editor, get_op("secrets", "team", "s")).is_ok());
}

/// k8s: escalation_check.go, policybased storage — the issue's case: a user with `edit`
/// cannot bind cluster-admin (it may not even create bindings), nor can an `admin` of the
/// namespace, who may bind what it holds; `bind` and `escalate` lift the check.
#[test]
fn escalation_is_prevented() {
    let mut a = Api::new();
    ns(&mut a, "team");
    bind(&mut a, "team", "edit", "editor");
    bind(&mut a, "team", "admin", "boss");
    let editor = user("editor", &["system:authenticated"]);
    let boss = user("boss", &["system:authenticated"]);
    let to = |role: &str, name: &str| {
        create_op(
            "rolebindings",
            "team",
            json!({"metadata": {"name": name},
            "roleRef": {"kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": "mallory"}]}),
        )
    };
    let e = exec_as(&mut a, &editor, to("cluster-admin", "x")).unwrap_err();
    assert_eq!(e.message, "rolebindings.rbac.authorization.k8s.io is forbidden: User \"editor\" cannot create resource \"rolebindings\" in API group \"rbac.authorization.k8s.io\" in the namespace \"team\"");
    let e = exec_as(&mut a, &boss, to("cluster-admin", "x")).unwrap_err();
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert!(e.message.starts_with("rolebindings.rbac.authorization.k8s.io \"x\" is forbidden: user \"boss\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"), "{}", e.message);
    assert!(
        e.message
            .contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{}",
        e.message
    );
    // What the admin holds, it may grant.
    assert!(exec_as(&mut a, &boss, to("edit", "ok")).is_ok());
    // A Role with more than the admin holds.
    let role = |name: &str| {
        create_op(
            "roles",
            "team",
            json!({"metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]}),
        )
    };
    let e = exec_as(&mut a, &boss, role("nodes")).unwrap_err();
    assert!(
        e.message
            .contains("{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"delete\"]}"),
        "{}",
        e.message
    );
    // `escalate` on roles and `bind` on cluster-admin lift the checks.
    a.create(rbac("clusterroles"), None, json!({"metadata": {"name": "delegate"},
        "rules": [{"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate"]},
                  {"apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]})).unwrap();
    bind(&mut a, "team", "delegate", "boss");
    assert!(exec_as(&mut a, &boss, role("nodes")).is_ok());
    assert!(exec_as(&mut a, &boss, to("cluster-admin", "y")).is_ok());
}

fn authz(plural: &str) -> &'static ResourceInfo {
    by_plural("authorization.k8s.io", plural).unwrap()
}

/// k8s: pkg/registry/authorization — the reviews answer as the authorizer does, are not
/// stored, and are validated as upstream.
#[test]
fn access_reviews_answer_as_the_authorizer() {
    let mut a = Api::new();
    ns(&mut a, "team");
    bind(&mut a, "team", "view", "viewer");
    let sar = |user: &str, groups: &[&str], verb: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": user, "groups": groups,
                        "resourceAttributes": {"verb": verb, "resource": "pods", "namespace": ns}}})
    };
    let allowed = |r: Result<Value, ApiError>| r.unwrap()["status"]["allowed"].as_bool().unwrap();
    let cases = [
        ("viewer", &[][..], "list", "team", true),
        ("viewer", &[], "create", "team", false),
        ("viewer", &[], "list", "other", false),
        ("x", &["system:masters"][..], "delete", "other", true),
    ];
    for (user, groups, verb, ns, want) in cases {
        assert_eq!(
            allowed(a.create(
                authz("subjectaccessreviews"),
                None,
                sar(user, groups, verb, ns)
            )),
            want,
            "{user} {verb} {ns}"
        );
    }
    // Not stored: nothing to list.
    let (items, _) = ready(
        a.api
            .list(authz("subjectaccessreviews"), None, &Default::default()),
    )
    .unwrap();
    assert!(items.is_empty());
    let e = a
        .create(
            authz("subjectaccessreviews"),
            None,
            json!({"spec": {"resourceAttributes": {"verb": "get"}}}),
        )
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("at least one of user or group must be specified"),
        "{}",
        e.message
    );
    let e = a
        .create(
            authz("subjectaccessreviews"),
            None,
            json!({"spec": {"user": "u"}}),
        )
        .unwrap_err();
    assert_eq!(e.code, 422);
    // The local form: its namespace is the URL's.
    let local = json!({"metadata": {"namespace": "team"}, "spec": {"user": "viewer",
        "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team"}}});
    assert!(allowed(a.create(
        authz("localsubjectaccessreviews"),
        Some("team"),
        local.clone()
    )));
    let e = a
        .create(authz("localsubjectaccessreviews"), Some("other"), local)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert!(e.message.contains("spec.resourceAttributes.namespace: Invalid value: \"team\": must match metadata.namespace"), "{}", e.message);
    // The self forms: as the requester.
    let viewer = user("viewer", &["system:authenticated"]);
    let ssar = json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "subresource": "log", "namespace": "team"}}});
    let c = a.ctx().as_user(viewer.clone());
    let r = ready(
        a.api
            .create(authz("selfsubjectaccessreviews"), None, ssar, &c),
    )
    .unwrap();
    assert_eq!(r["status"]["allowed"], true);
    let ssrr = json!({"spec": {"namespace": "team"}});
    let c = a.ctx().as_user(viewer);
    let r = ready(
        a.api
            .create(authz("selfsubjectrulesreviews"), None, ssrr, &c),
    )
    .unwrap();
    let status = &r["status"];
    assert_eq!(status["incomplete"], false);
    let resource_rules = status["resourceRules"].as_array().unwrap();
    assert!(resource_rules.iter().any(|r| r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "pods/log")));
    assert!(resource_rules
        .iter()
        .any(|r| r["resources"] == json!(["selfsubjectaccessreviews", "selfsubjectrulesreviews"])));
    assert!(status["nonResourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["nonResourceURLs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "/healthz")));
    let c = a.ctx();
    let r = ready(a.api.create(
        authz("selfsubjectrulesreviews"),
        None,
        json!({"spec": {"namespace": "team"}}),
        &c,
    ))
    .unwrap();
    assert_eq!(
        r["status"]["resourceRules"][0],
        json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    );
}

/// A component that creates a ConfigMap in `default` once its namespace list arrives.
struct Writer(&'static str);

impl gantry::component::Component for Writer {
    fn name(&self) -> &str {
        self.0
    }

    fn user(&self) -> UserInfo {
        UserInfo::service_account("kube-system", self.0)
    }

    fn watches(&self) -> Vec<gantry::component::WatchSpec> {
        vec![gantry::component::WatchSpec::all(
            by_plural("", "namespaces").unwrap(),
        )]
    }

    fn step(
        &mut self,
        _: gantry::time::Time,
        input: gantry::component::Input,
        _: &mut dyn rand::RngCore,
        out: &mut Vec<gantry::component::Effect>,
    ) {
        if let gantry::component::Input::Listed { .. } = input {
            out.push(gantry::component::Effect::Api {
                id: 1,
                op: create_op(
                    "configmaps",
                    "default",
                    json!({"metadata": {"name": self.0}}),
                ),
            });
        }
    }
}

/// The test host puts each component's identity in its requests: a controller's
/// ServiceAccount may do what its bootstrap role allows and nothing else.
#[test]
fn components_act_as_their_identity() {
    let mut d = gantry::testkit::Driver::new(7);
    // The root-ca-cert-publisher may create ConfigMaps; the pod GC may not.
    d.add(Box::new(Writer("root-ca-cert-publisher")));
    d.add(Box::new(Writer("pod-garbage-collector")));
    let outcome = |who: &str| {
        d.log
            .iter()
            .find(|(c, what, _)| c == who && what.starts_with("create configmaps"))
            .map(|(_, _, code)| *code)
    };
    assert_eq!(outcome("root-ca-cert-publisher"), Some(200));
    assert_eq!(outcome("pod-garbage-collector"), Some(403));
}

/// k8s: clusterroleaggregation_controller_test.go — a ClusterRole labelled
/// `aggregate-to-view` extends view, and through it edit and admin; removing it shrinks them.
#[test]
fn the_aggregation_controller_extends_view() {
    use gantry::component::ApiOp;
    let mut d = gantry::testkit::Driver::new(3);
    d.add(Box::new(
        gantry::controllers::clusterroleaggregation::ClusterRoleAggregation::new(),
    ));
    let rule =
        json!({"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]});
    d.client(ApiOp::Create {
        resource: rbac("clusterroles"),
        namespace: None,
        body: json!({"metadata": {"name": "widget-viewer",
                                  "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                     "rules": [rule]}),
    })
    .unwrap();
    let get = |d: &mut gantry::testkit::Driver, name: &str| {
        d.client(ApiOp::Get {
            resource: rbac("clusterroles"),
            namespace: None,
            name: name.into(),
        })
        .unwrap()
    };
    for role in ["view", "edit", "admin"] {
        let r = get(&mut d, role);
        assert!(r["rules"].as_array().unwrap().contains(&rule), "{role}");
    }
    // A viewer may now list widgets.
    d.client(ApiOp::Create {
        resource: rbac("clusterrolebindings"),
        namespace: None,
        body: json!({"metadata": {"name": "v-view"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                     "subjects": [{"kind": "User", "name": "v"}]}),
    })
    .unwrap();
    let widgets =
        gantry::auth::rbac::Attributes::resource("list", "example.com", "widgets", "team", "");
    let v = UserInfo::new("v", &[]);
    assert!(d.api.authorize(&v, &widgets).allowed());
    d.client(ApiOp::Delete {
        resource: rbac("clusterroles"),
        namespace: None,
        name: "widget-viewer".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    for role in ["view", "edit", "admin"] {
        let r = get(&mut d, role);
        assert!(!r["rules"].as_array().unwrap().contains(&rule), "{role}");
    }
    assert!(!d.api.authorize(&v, &widgets).allowed());
    // The controller wrote as its ServiceAccount (which may escalate ClusterRoles).
    assert!(d
        .log
        .iter()
        .any(|(c, what, code)| c == "clusterrole-aggregation-controller"
            && what.starts_with("update clusterroles view")
            && *code == 200));
}
