//! A request's identity, as upstream's `user.Info` (k8s.io/apiserver/pkg/authentication/user).

use std::collections::BTreeMap;

/// k8s: user.SystemPrivilegedGroup: members may do anything.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// k8s: user.AllAuthenticated: every authenticated user is in it.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// k8s: user.AllUnauthenticated.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// k8s: user.Anonymous.
pub const ANONYMOUS: &str = "system:anonymous";
/// k8s: user.APIServerUser: the apiserver's own loopback client.
pub const APISERVER_USER: &str = "system:apiserver";
/// k8s: user.NodesGroup.
pub const NODES_GROUP: &str = "system:nodes";
/// k8s: the prefix of a node's user name (`system:node:<name>`).
pub const NODE_USER_PREFIX: &str = "system:node:";
/// k8s: serviceaccount.ServiceAccountUsernamePrefix.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// k8s: serviceaccount.AllServiceAccountsGroup.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// A user name, a UID, groups and extra attributes (k8s: user.DefaultInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user in `groups` (give `system:authenticated` explicitly where it applies).
    pub fn new(name: impl Into<String>, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    /// k8s: the anonymous authenticator's user.
    pub fn anonymous() -> UserInfo {
        UserInfo::new(ANONYMOUS, &[ALL_UNAUTHENTICATED])
    }

    /// The apiserver's own requests (boot objects, allocations): k8s' loopback client,
    /// `system:apiserver` in `system:masters`.
    pub fn apiserver() -> UserInfo {
        UserInfo::new(APISERVER_USER, &[SYSTEM_MASTERS, ALL_AUTHENTICATED])
    }

    /// A ServiceAccount's user: `system:serviceaccount:<ns>:<name>` in
    /// `system:serviceaccounts` and `system:serviceaccounts:<ns>`.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo {
            name: format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
            uid: String::new(),
            groups: vec![
                ALL_SERVICE_ACCOUNTS_GROUP.to_string(),
                format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                ALL_AUTHENTICATED.to_string(),
            ],
            extra: BTreeMap::new(),
        }
    }

    /// A node's user: `system:node:<name>` in `system:nodes`.
    pub fn node(name: &str) -> UserInfo {
        UserInfo::new(
            format!("{NODE_USER_PREFIX}{name}"),
            &[NODES_GROUP, ALL_AUTHENTICATED],
        )
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_have_upstreams_names_and_groups() {
        let sa = UserInfo::service_account("ns1", "builder");
        assert_eq!(sa.name, "system:serviceaccount:ns1:builder");
        assert!(sa.in_group("system:serviceaccounts:ns1"));
        assert!(sa.in_group(ALL_AUTHENTICATED));
        assert!(!sa.in_group(SYSTEM_MASTERS));
        let node = UserInfo::node("n1");
        assert_eq!(node.name, "system:node:n1");
        assert!(node.in_group(NODES_GROUP));
        assert!(UserInfo::anonymous().in_group(ALL_UNAUTHENTICATED));
        assert!(!UserInfo::anonymous().in_group(ALL_AUTHENTICATED));
        assert!(UserInfo::apiserver().in_group(SYSTEM_MASTERS));
    }
}
