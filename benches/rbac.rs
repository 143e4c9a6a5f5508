//! RBAC evaluation with 1,000 bindings (issue 16's target: under 5 µs per request): the
//! apiserver core's authorizer (`ApiServer::authorize`: privileged group, then RBAC over the
//! index) after the bootstrap policy and 1,000 RoleBindings and ClusterRoleBindings, for
//! requests allowed and refused.
//!
//! `cargo bench --bench rbac`

use std::hint::black_box;
use std::time::Instant;

use futures::FutureExt;
use gantry::api::registry::{by_plural, RBAC_GROUP};
use gantry::apiserver::{ApiServer, RequestContext};
use gantry::auth::rbac::Attributes;
use gantry::auth::UserInfo;
use gantry::store::mem::MemStore;
use serde_json::json;

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

fn ctx(n: u64) -> RequestContext {
    RequestContext::new(
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        format!("00000000-0000-4000-8000-{n:012}"),
        n,
    )
}

const NAMESPACES: usize = 50;
const BINDINGS: usize = 1000;

fn main() {
    let api = ApiServer::new(MemStore::default());
    let mut n = 0;
    ready(api.bootstrap(|| {
        n += 1;
        ctx(n)
    }))
    .unwrap();
    let ns_res = by_plural("", "namespaces").unwrap();
    for i in 0..NAMESPACES {
        n += 1;
        ready(api.create(
            ns_res,
            None,
            json!({"metadata": {"name": format!("ns-{i}")}}),
            &ctx(n),
        ))
        .unwrap();
    }
    // 900 RoleBindings (users bound to view or edit in one namespace, a group in each tenth)
    // and 100 ClusterRoleBindings.
    let rb = by_plural(RBAC_GROUP, "rolebindings").unwrap();
    let crb = by_plural(RBAC_GROUP, "clusterrolebindings").unwrap();
    for i in 0..BINDINGS {
        n += 1;
        let role = if i % 2 == 0 { "view" } else { "edit" };
        let subject = if i % 10 == 0 {
            json!({"kind": "Group", "name": format!("team-{}", i / 10)})
        } else {
            json!({"kind": "User", "name": format!("user-{i}")})
        };
        let body = json!({"metadata": {"name": format!("b-{i}")},
                          "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": [subject]});
        if i < 900 {
            let ns = format!("ns-{}", i % NAMESPACES);
            ready(api.create(rb, Some(&ns), body, &ctx(n))).unwrap();
        } else {
            ready(api.create(crb, None, body, &ctx(n))).unwrap();
        }
    }
    assert!(api.rbac().binding_count() >= BINDINGS);
    let user = |name: &str, groups: &[&str]| {
        let mut all: Vec<&str> = groups.to_vec();
        all.push("system:authenticated");
        UserInfo::new(name, &all)
    };
    // user-777 has edit in ns-27; its group team-3 has nothing more.
    let cases: Vec<(&str, UserInfo, Attributes, bool)> = vec![
        (
            "allowed: create deployments via a RoleBinding to edit",
            user("user-777", &["team-3"]),
            Attributes::resource("create", "apps", "deployments", "ns-27", ""),
            true,
        ),
        (
            "allowed: get pods/log via view",
            user("user-778", &[]),
            Attributes::resource("get", "", "pods", "ns-28", "web").with_subresource("log"),
            true,
        ),
        (
            "refused: another namespace (every binding of the user looked at)",
            user("user-777", &["team-3", "team-4"]),
            Attributes::resource("create", "apps", "deployments", "ns-1", ""),
            false,
        ),
        (
            "refused: nodes at the cluster scope",
            user("user-5", &[]),
            Attributes::resource("list", "", "nodes", "", ""),
            false,
        ),
        (
            "allowed: discovery (system:authenticated's binding)",
            user("user-5", &[]),
            Attributes::non_resource("get", "/apis/apps/v1"),
            true,
        ),
        (
            "allowed: system:masters",
            UserInfo::apiserver(),
            Attributes::resource("delete", "", "nodes", "", "n1"),
            true,
        ),
    ];
    println!(
        "RBAC evaluation, {} bindings ({} in the bootstrap policy), per request:",
        api.rbac().binding_count(),
        api.rbac().binding_count() - BINDINGS
    );
    const ITERS: u32 = 200_000;
    for (what, user, attrs, want) in &cases {
        assert_eq!(api.authorize(user, attrs).allowed(), *want, "{what}");
        // Warm up, then the best of five runs.
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..ITERS {
                black_box(api.authorize(black_box(user), black_box(attrs)));
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(ITERS));
        }
        println!("  {best:>8.0} ns  {what}");
    }
}
