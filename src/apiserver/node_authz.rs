//! The Node authorizer and NodeRestriction admission in the apiserver core (k8s: kube-apiserver
//! --authorization-mode=Node,RBAC and --enable-admission-plugins=NodeRestriction): the graph
//! kept current by every committed write of its resources, the authorizer in the chain before
//! RBAC, and the admission check of node users' writes.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use serde_json::{json, Value};

use super::node_graph::NODE_GRAPH_RESOURCES;
use super::ApiServer;
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::ApiError;
use crate::auth::authorizer::Authorizer;
use crate::auth::node::admission::{self, NoLookup, NodeAdmission, Operation, Prefetched};
use crate::auth::node::{NodeAuthorizer, NodeDecision, NodeRequest};
use crate::auth::rbac::{Attributes, Decision};
use crate::auth::UserInfo;
use crate::store::Store;

/// The graph behind a lock (read by every node request, written by pod and volume writes).
#[derive(Default)]
pub(crate) struct NodeState(RwLock<NodeAuthorizer>);

/// `/registry/<group>/<plural>/[<ns>/]<name>` of a graph resource: (group, plural, ns, name).
fn graph_key(key: &str) -> Option<(&'static str, &'static str, &str, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let (group, rest) = rest.split_once('/')?;
    let (plural, rest) = rest.split_once('/')?;
    let group = if group == "core" { "" } else { group };
    let &(g, p) = NODE_GRAPH_RESOURCES
        .iter()
        .find(|(g, p)| *g == group && *p == plural)?;
    let res = registry::by_plural(g, p)?;
    let (ns, name) = if res.namespaced {
        rest.split_once('/')?
    } else {
        ("", rest)
    };
    Some((g, p, ns, name))
}

/// The Node authorizer as one mode of the chain: it allows or has no opinion (with its
/// reason), never denies, so RBAC may still allow (k8s: node_authorizer.go).
pub(crate) struct NodeMode<'a>(pub &'a NodeAuthorizer);

impl Authorizer for NodeMode<'_> {
    fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        let req = NodeRequest {
            verb: a.verb,
            namespace: a.namespace,
            api_group: a.api_group,
            resource: if a.resource_request { a.resource } else { "" },
            subresource: a.subresource,
            name: a.name,
            field_selector_name: None,
            field_selector_node_name: None,
        };
        match self.0.authorize(user, &req) {
            NodeDecision::Allow => Decision::Allow(String::new()),
            NodeDecision::NoOpinion(reason) => Decision::NoOpinion(reason),
        }
    }
}

impl<S: Store> ApiServer<S> {
    /// A committed write of `key` (`None`: deleted): pods, PVs and VolumeAttachments go to
    /// the Node authorizer's graph, before the write is answered (so a kubelet's next read of
    /// its pod's Secret already finds the edge).
    pub(crate) fn node_graph_committed(&self, key: &str, obj: Option<&Value>) {
        let Some((group, plural, ns, name)) = graph_key(key) else {
            return;
        };
        let mut authz = self.node_authz.0.write().unwrap_or_else(|e| e.into_inner());
        match obj {
            Some(obj) => authz.observe(group, plural, None, Some(obj)),
            None => {
                let gone = json!({"metadata": {"namespace": ns, "name": name}});
                authz.observe(group, plural, Some(&gone), None)
            }
        }
    }

    /// Fills the graph from the store (at start).
    pub async fn load_node_authorizer(&self) -> Result<(), ApiError> {
        let mut fresh = NodeAuthorizer::new();
        self.load_node_graph(&mut fresh).await?;
        *self.node_authz.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The Node authorizer's graph, for reading.
    pub(crate) fn node_authorizer(&self) -> RwLockReadGuard<'_, NodeAuthorizer> {
        self.node_authz.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// NodeRestriction for one write (k8s: plugin/pkg/admission/noderestriction): nothing for
    /// users that are not nodes; for a node, the pod and Node it needs are read first.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_node_write(
        &self,
        user: &UserInfo,
        operation: Operation,
        res: &ResourceInfo,
        subresource: &str,
        namespace: &str,
        name: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), ApiError> {
        if crate::auth::node::identity::node_identity(user).is_none() {
            return Ok(());
        }
        let mut req = NodeAdmission {
            operation,
            group: res.group,
            resource: res.plural,
            subresource,
            namespace,
            name,
            old,
            new,
            lookup: &NoLookup,
        };
        let want = admission::lookups(user, &req);
        let mut found = Prefetched::default();
        if let Some((ns, pod)) = want.pod {
            let pods = registry::by_plural("", "pods").expect("registered");
            if let Ok(obj) = self.get(pods, Some(&ns), &pod).await {
                found.pod = Some(((ns, pod), Arc::new(obj)));
            }
        }
        if let Some(node) = want.node {
            let nodes = registry::by_plural("", "nodes").expect("registered");
            if let Ok(obj) = self.get(nodes, None, &node).await {
                found.node = Some((node, Arc::new(obj)));
            }
        }
        req.lookup = &found;
        admission::admit(user, &req)
    }
}
