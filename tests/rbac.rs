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

#[allow(dead_code)]
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
