//! What NodeRestriction reads besides the request: the pod a delete, eviction or token is
//! about, and the requesting node's Node (k8s: the plugin's pod and node listers).

use std::sync::Arc;

use serde_json::Value;

use super::{NodeAdmission, Operation};
use crate::auth::node::identity::node_identity;
use crate::auth::node::refs;
use crate::auth::UserInfo;

/// The stored objects the plugin reads (k8s: its pod and node listers).
pub trait NodeLookup {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>>;
    fn node(&self, name: &str) -> Option<Arc<Value>>;
}

/// A lookup that finds nothing: for [`lookups`], which never reads, and for callers that
/// prefetch with [`Prefetched`].
pub struct NoLookup;

impl NodeLookup for NoLookup {
    fn pod(&self, _: &str, _: &str) -> Option<Arc<Value>> {
        None
    }
    fn node(&self, _: &str) -> Option<Arc<Value>> {
        None
    }
}

/// The objects [`lookups`] asked for, read by the caller (from its store, asynchronously if
/// need be) before calling [`admit`].
#[derive(Clone, Debug, Default)]
pub struct Prefetched {
    /// `(namespace, name)` and the pod, if it exists.
    pub pod: Option<((String, String), Arc<Value>)>,
    pub node: Option<(String, Arc<Value>)>,
}

impl NodeLookup for Prefetched {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.pod
            .as_ref()
            .filter(|((ns, n), _)| ns == namespace && n == name)
            .map(|(_, p)| p.clone())
    }
    fn node(&self, name: &str) -> Option<Arc<Value>> {
        self.node
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// What [`admit`] will read through its lookup for this request: the pod `(namespace, name)`
/// and the requesting node's Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    pub pod: Option<(String, String)>,
    pub node: Option<String>,
}

/// The reads [`admit`] needs, so that a caller whose store is asynchronous can do them first
/// and pass a [`Prefetched`] (the request's own `lookup` is not used here).
pub fn lookups(user: &UserInfo, req: &NodeAdmission) -> Lookups {
    let mut want = Lookups::default();
    let Some(node) = node_identity(user).filter(|n| !n.is_empty()) else {
        return want;
    };
    let ns = req.namespace.to_string();
    match (req.group, req.resource, req.subresource, req.operation) {
        ("", "pods", "", Operation::Delete) if req.old.is_none() => {
            want.pod = Some((ns, req.name.to_string()));
        }
        ("", "pods", "", Operation::Create) => want.node = Some(node.to_string()),
        ("", "pods", "eviction", Operation::Create) => {
            let name = if req.name.is_empty() {
                req.new.map(refs::object_name).unwrap_or_default()
            } else {
                req.name
            };
            want.pod = Some((ns, name.to_string()));
        }
        ("", "serviceaccounts", "token", Operation::Create) => {
            let name = req
                .new
                .and_then(|t| t.pointer("/spec/boundObjectRef/name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !name.is_empty() {
                want.pod = Some((ns, name.to_string()));
            }
        }
        _ => {}
    }
    want
}
