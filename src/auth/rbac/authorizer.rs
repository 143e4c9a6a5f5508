//! The RBAC authorizer (k8s: plugin/pkg/auth/authorizer/rbac/rbac.go): a request is allowed
//! when a rule of a role bound to its user or one of its groups allows it; otherwise it has no
//! opinion (RBAC never denies).

use super::attributes::{Attributes, Decision};
use super::index::RbacIndex;
use crate::auth::authorizer::Authorizer;
use crate::auth::user::UserInfo;

pub struct Rbac<'a>(pub &'a RbacIndex);

impl Authorizer for Rbac<'_> {
    fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        let mut allowed = false;
        let mut errors: Vec<String> = Vec::new();
        self.0
            .visit_rules(&user.name, &user.groups, a.namespace, |rules| match rules {
                Ok(rules) => {
                    allowed = rules.iter().any(|r| r.allows(a));
                    !allowed
                }
                Err(missing) => {
                    errors.push(missing.to_string());
                    true
                }
            });
        if allowed {
            return Decision::Allow(String::new());
        }
        // k8s: the reason names the roles bindings refer to that are missing.
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        Decision::NoOpinion(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::index::Kind;
    use serde_json::json;

    fn index() -> RbacIndex {
        let mut ix = RbacIndex::default();
        let view = json!({"rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"]}]});
        let edit =
            json!({"rules": [{"verbs": ["*"], "apiGroups": ["", "apps"], "resources": ["*"]}]});
        let urls =
            json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/version/*"]}]});
        ix.apply(Kind::ClusterRole, "", "view", Some(&view));
        ix.apply(Kind::ClusterRole, "", "urls", Some(&urls));
        ix.apply(Kind::Role, "dev", "edit", Some(&edit));
        let rb = |role_kind: &str, role: &str, subjects: serde_json::Value| json!({"roleRef": {"kind": role_kind, "name": role}, "subjects": subjects});
        // A RoleBinding to a ClusterRole grants it within its namespace only.
        ix.apply(
            Kind::RoleBinding,
            "dev",
            "alice-view",
            Some(&rb(
                "ClusterRole",
                "view",
                json!([{"kind": "User", "name": "alice"}]),
            )),
        );
        ix.apply(
            Kind::RoleBinding,
            "dev",
            "bob-edit",
            Some(&rb(
                "Role",
                "edit",
                json!([{"kind": "Group", "name": "devs"}]),
            )),
        );
        ix.apply(
            Kind::RoleBinding,
            "dev",
            "sa",
            Some(&rb(
                "ClusterRole",
                "view",
                json!([{"kind": "ServiceAccount", "name": "builder"}]),
            )),
        );
        ix.apply(
            Kind::RoleBinding,
            "dev",
            "dangling",
            Some(&rb(
                "Role",
                "gone",
                json!([{"kind": "User", "name": "carol"}]),
            )),
        );
        ix.apply(
            Kind::ClusterRoleBinding,
            "",
            "everyone-urls",
            Some(&rb(
                "ClusterRole",
                "urls",
                json!([{"kind": "Group", "name": "system:authenticated"}]),
            )),
        );
        ix.apply(
            Kind::ClusterRoleBinding,
            "",
            "ops-view",
            Some(&rb(
                "ClusterRole",
                "view",
                json!([{"kind": "ServiceAccount", "name": "mon", "namespace": "ops"}]),
            )),
        );
        ix
    }

    /// k8s: rbac_test.go TestAuthorizer — bindings by user, group and ServiceAccount, in
    /// their namespace or cluster-wide.
    #[test]
    fn bindings_grant_their_roles_where_they_apply() {
        let ix = index();
        let alice = UserInfo::new("alice", &["system:authenticated"]);
        let bob = UserInfo::new("bob", &["devs", "system:authenticated"]);
        let builder = UserInfo::service_account("dev", "builder");
        let mon = UserInfo::service_account("ops", "mon");
        let carol = UserInfo::new("carol", &[]);
        let pods =
            |verb: &'static str, ns: &'static str| Attributes::resource(verb, "", "pods", ns, "");
        let cases: Vec<(&UserInfo, Attributes, bool)> = vec![
            (&alice, pods("list", "dev"), true),
            (&alice, pods("create", "dev"), false),
            (&alice, pods("list", "prod"), false),
            (&alice, pods("list", ""), false),
            (
                &alice,
                Attributes::resource("get", "", "pods", "dev", "web").with_subresource("log"),
                true,
            ),
            (
                &alice,
                Attributes::resource("get", "", "pods", "dev", "web").with_subresource("exec"),
                false,
            ),
            (&bob, pods("create", "dev"), true),
            (
                &bob,
                Attributes::resource("delete", "apps", "deployments", "dev", "d"),
                true,
            ),
            (&bob, pods("create", "prod"), false),
            (&builder, pods("watch", "dev"), true),
            (&builder, pods("watch", "ops"), false),
            (&mon, pods("list", ""), true),
            (&mon, pods("list", "anywhere"), true),
            (&alice, Attributes::non_resource("get", "/healthz"), true),
            (&alice, Attributes::non_resource("get", "/version/x"), true),
            (&alice, Attributes::non_resource("post", "/healthz"), false),
            (&carol, Attributes::non_resource("get", "/healthz"), false),
            (&carol, pods("get", "dev"), false),
        ];
        for (user, a, want) in cases {
            assert_eq!(
                Rbac(&ix).authorize(user, &a).allowed(),
                want,
                "{} {a:?}",
                user.name
            );
        }
        assert_eq!(
            Rbac(&ix).authorize(&carol, &pods("get", "dev")),
            Decision::NoOpinion("RBAC: role.rbac.authorization.k8s.io \"gone\" not found".into())
        );
    }

    #[test]
    fn the_index_follows_updates_and_deletes() {
        let mut ix = index();
        let alice = UserInfo::new("alice", &[]);
        let list = Attributes::resource("list", "", "pods", "dev", "");
        assert!(Rbac(&ix).authorize(&alice, &list).allowed());
        // The binding now names someone else.
        let other = json!({"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "dave"}]});
        ix.apply(Kind::RoleBinding, "dev", "alice-view", Some(&other));
        assert!(!Rbac(&ix).authorize(&alice, &list).allowed());
        assert!(Rbac(&ix)
            .authorize(&UserInfo::new("dave", &[]), &list)
            .allowed());
        ix.apply(Kind::ClusterRole, "", "view", None);
        assert!(!Rbac(&ix)
            .authorize(&UserInfo::new("dave", &[]), &list)
            .allowed());
        ix.apply(Kind::RoleBinding, "dev", "alice-view", None);
        assert_eq!(ix.binding_count(), 5);
    }
}
