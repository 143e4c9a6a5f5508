//! Authorization in the apiserver core: the RBAC index kept current by every RBAC write this
//! apiserver commits, the authorizer chain, and the attributes of a component's request.

use std::sync::{RwLock, RwLockReadGuard};

use serde_json::Value;

use super::node_authz::NodeMode;
use super::{ApiServer, ListOptions};
use crate::api::registry::{self, RBAC_GROUP};
use crate::api::status::ApiError;
use crate::auth::authorizer::{union, Authorizer, PrivilegedGroups};
use crate::auth::rbac::authorizer::Rbac;
use crate::auth::rbac::index::Kind;
use crate::auth::rbac::{forbidden, Attributes, Decision, RbacIndex};
use crate::auth::UserInfo;
use crate::component::ApiOp;
use crate::store::Store;

/// The index behind a lock (reads are many, RBAC writes few).
#[derive(Default)]
pub(crate) struct RbacState(RwLock<RbacIndex>);

/// `/registry/rbac.authorization.k8s.io/<plural>/[<ns>/]<name>`: the kind, namespace, name.
fn rbac_key(key: &str) -> Option<(Kind, &str, &str)> {
    let rest = key.strip_prefix("/registry/rbac.authorization.k8s.io/")?;
    let (plural, rest) = rest.split_once('/')?;
    let kind = Kind::of_plural(plural)?;
    let (ns, name) = match kind {
        Kind::Role | Kind::RoleBinding => rest.split_once('/')?,
        _ => ("", rest),
    };
    Some((kind, ns, name))
}

impl<S: Store> ApiServer<S> {
    /// The RBAC index, for reading.
    pub fn rbac(&self) -> RwLockReadGuard<'_, RbacIndex> {
        self.rbac.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A committed write of `key` (`None`: deleted): RBAC objects go to the index.
    pub(crate) fn rbac_committed(&self, key: &str, obj: Option<&Value>) {
        if let Some((kind, ns, name)) = rbac_key(key) {
            let mut index = self.rbac.0.write().unwrap_or_else(|e| e.into_inner());
            index.apply(kind, ns, name, obj);
        }
    }

    /// Reads the four RBAC kinds from the store into the index (at start).
    pub async fn load_rbac(&self) -> Result<(), ApiError> {
        for plural in [
            "clusterroles",
            "roles",
            "clusterrolebindings",
            "rolebindings",
        ] {
            let res = registry::by_plural(RBAC_GROUP, plural).expect("registered");
            let (items, _) = self.list(res, None, &ListOptions::default()).await?;
            let kind = Kind::of_plural(plural).expect("an RBAC plural");
            let mut index = self.rbac.0.write().unwrap_or_else(|e| e.into_inner());
            for obj in &items {
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
                let name = obj["metadata"]["name"].as_str().unwrap_or("");
                index.apply(kind, ns, name, Some(obj));
            }
        }
        Ok(())
    }

    /// k8s: the apiserver's authorizer — the union of the privileged group, the Node
    /// authorizer and RBAC.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        // The privileged group first, without the index's lock.
        if let d @ Decision::Allow(_) = PrivilegedGroups.authorize(user, a) {
            return d;
        }
        // k8s: --authorization-mode=Node,RBAC.
        let graph = self.node_authorizer();
        let index = self.rbac();
        union(&[&NodeMode(&graph), &Rbac(&index)], user, a)
    }

    /// `Ok` if `user` may, else the 403 upstream answers.
    pub fn check(&self, user: &UserInfo, a: &Attributes) -> Result<(), ApiError> {
        match self.authorize(user, a) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                tracing::debug!(user = %user.name, verb = a.verb, resource = a.resource, namespace = a.namespace, "forbidden");
                Err(forbidden::error(&user.name, a, &reason))
            }
        }
    }
}

/// The attributes of a component's request (k8s: what the request-info resolver makes of the
/// HTTP request client-go would send for it).
pub fn op_attributes(op: &ApiOp) -> Attributes<'_> {
    fn ns(n: &Option<String>) -> &str {
        n.as_deref().unwrap_or("")
    }
    match op {
        ApiOp::Create {
            resource,
            namespace,
            ..
        } => Attributes::resource("create", resource.group, resource.plural, ns(namespace), ""),
        ApiOp::Update {
            resource,
            namespace,
            name,
            part,
            ..
        } => Attributes::resource(
            "update",
            resource.group,
            resource.plural,
            ns(namespace),
            name,
        )
        .with_subresource(part.subresource()),
        ApiOp::Delete {
            resource,
            namespace,
            name,
            ..
        } => Attributes::resource(
            "delete",
            resource.group,
            resource.plural,
            ns(namespace),
            name,
        ),
        ApiOp::Get {
            resource,
            namespace,
            name,
        } => Attributes::resource("get", resource.group, resource.plural, ns(namespace), name),
        ApiOp::Bind {
            namespace, name, ..
        } => {
            Attributes::resource("create", "", "pods", namespace, name).with_subresource("binding")
        }
        ApiOp::CreateToken {
            namespace, name, ..
        } => Attributes::resource("create", "", "serviceaccounts", namespace, name)
            .with_subresource("token"),
        ApiOp::DeleteCollection {
            resource,
            namespace,
        } => Attributes::resource(
            "deletecollection",
            resource.group,
            resource.plural,
            namespace,
            "",
        ),
    }
    .versioned()
}

impl<'a> Attributes<'a> {
    /// The request's API version (every served resource is v1).
    fn versioned(mut self) -> Self {
        self.api_version = "v1";
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_keys_name_kind_namespace_and_name() {
        assert_eq!(
            rbac_key("/registry/rbac.authorization.k8s.io/roles/ns/r"),
            Some((Kind::Role, "ns", "r"))
        );
        assert_eq!(
            rbac_key("/registry/rbac.authorization.k8s.io/clusterroles/system:node"),
            Some((Kind::ClusterRole, "", "system:node"))
        );
        assert_eq!(rbac_key("/registry/core/pods/ns/p"), None);
    }
}
