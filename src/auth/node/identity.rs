//! Which node a user is (k8s: pkg/auth/nodeidentifier/default.go).

use crate::auth::user::{UserInfo, NODES_GROUP, NODE_USER_PREFIX};

/// `None` when the user is not a node (its name lacks the `system:node:` prefix or it is not in
/// `system:nodes`); `Some("")` for a node user with no name after the prefix, which upstream
/// treats as a node it cannot identify.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.in_group(NODES_GROUP).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::user::ALL_AUTHENTICATED;

    #[test]
    fn node_users_are_named_and_grouped_as_upstream() {
        // k8s: nodeidentifier/default_test.go
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            (
                "system:node:n1",
                &[NODES_GROUP, ALL_AUTHENTICATED],
                Some("n1"),
            ),
            ("system:node:", &[NODES_GROUP], Some("")),
            ("system:node:n1", &[ALL_AUTHENTICATED], None),
            ("n1", &[NODES_GROUP], None),
            ("system:nodes:n1", &[NODES_GROUP], None),
            ("system:serviceaccount:kube-system:n1", &[NODES_GROUP], None),
        ];
        for (name, groups, want) in cases {
            let user = UserInfo::new(*name, groups);
            assert_eq!(node_identity(&user), *want, "{name} {groups:?}");
        }
        assert_eq!(node_identity(&UserInfo::node("n2")), Some("n2"));
        assert_eq!(node_identity(&UserInfo::apiserver()), None);
    }
}
