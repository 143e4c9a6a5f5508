//! The Node authorizer (k8s: plugin/pkg/auth/authorizer/node/node_authorizer.go, v1.33 with
//! AuthorizeNodeWithSelectors on, its default): a node reads the Secrets, ConfigMaps, claims,
//! volumes and VolumeAttachments of its pods only, creates tokens only for the
//! ServiceAccounts of its pods, touches only its own Lease, CSINode and Node, lists only its
//! own pods; everything else is judged by the static node rules ([`super::rules`]).
//!
//! Like upstream it never denies outright: a refusal is "no opinion" with upstream's reason,
//! so a later authorizer (RBAC) may still allow, and the final 403 carries the reason.

use serde_json::Value;
use tracing::info;

use super::graph::{Graph, VertexType};
use super::identity::node_identity;
use super::rules::node_rules_allow;
use crate::apiserver::FieldSelector;
use crate::auth::UserInfo;

/// k8s: api.NamespaceNodeLease.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What the Node authorizer needs of a request (k8s: authorizer.Attributes). A non-resource
/// request has an empty `resource`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeRequest<'a> {
    pub verb: &'a str,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    /// `metadata.name=<x>` in a list or watch's fieldSelector: upstream's RequestInfo makes it
    /// the request's name, so a node may watch one Secret it is allowed to read.
    pub field_selector_name: Option<&'a str>,
    /// `spec.nodeName=<x>` in the fieldSelector (k8s: a node lists and watches only its pods).
    pub field_selector_node_name: Option<&'a str>,
}

impl<'a> NodeRequest<'a> {
    /// The two field-selector values the authorizer looks at, taken from a parsed selector
    /// (equality terms only, as upstream's `RequiresExactMatch`).
    pub fn with_field_selector(mut self, selector: &'a FieldSelector) -> NodeRequest<'a> {
        for (field, equal, value) in &selector.0 {
            if !*equal {
                continue;
            }
            match field.as_str() {
                "metadata.name" => self.field_selector_name = Some(value),
                "spec.nodeName" => self.field_selector_node_name = Some(value),
                _ => {}
            }
        }
        self
    }

    /// k8s: RequestInfoFactory: a list or watch without a name in its path takes the name of
    /// its `metadata.name` field selector.
    fn name(&self) -> &'a str {
        if self.name.is_empty() && matches!(self.verb, "list" | "watch") {
            self.field_selector_name.unwrap_or_default()
        } else {
            self.name
        }
    }
}

/// The Node authorizer's answer. Upstream's authorizer only allows or abstains; an abstention
/// carries the reason (empty when there is none), which the chain puts in its 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeDecision {
    Allow,
    NoOpinion(String),
}

impl NodeDecision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, NodeDecision::Allow)
    }

    /// The reason of an abstention, if it has one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            NodeDecision::NoOpinion(r) if !r.is_empty() => Some(r),
            _ => None,
        }
    }
}

fn no(reason: impl Into<String>) -> NodeDecision {
    NodeDecision::NoOpinion(reason.into())
}

fn no_relationship(node: &str) -> NodeDecision {
    no(format!(
        "no relationship found between node '{node}' and this object"
    ))
}

/// The authorizer and the graph it reads.
#[derive(Debug, Default, Clone)]
pub struct NodeAuthorizer {
    graph: Graph,
}

impl NodeAuthorizer {
    pub fn new() -> NodeAuthorizer {
        NodeAuthorizer::default()
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Feed the graph: a committed write (`new` is `None` for a delete, `old` unused but for
    /// the namespace and name of a deleted object).
    pub fn observe(
        &mut self,
        group: &str,
        resource: &str,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        match (old, new) {
            (_, Some(obj)) => self.graph.apply(group, resource, obj),
            (Some(obj), None) => self.graph.remove(
                group,
                resource,
                super::refs::object_namespace(obj),
                super::refs::object_name(obj),
            ),
            (None, None) => {}
        }
    }

    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    /// k8s: NodeAuthorizer.RulesFor: a node's permissions cannot be listed (its rules depend
    /// on the graph), so a SelfSubjectRulesReview of a node is incomplete with this error;
    /// `None` for other users (the authorizer adds no rules for them).
    pub fn rules_for(&self, user: &UserInfo) -> Option<&'static str> {
        node_identity(user).map(|_| "node authorizer does not support user rule resolution")
    }

    /// k8s: NodeAuthorizer.Authorize.
    pub fn authorize(&self, user: &UserInfo, req: &NodeRequest) -> NodeDecision {
        let Some(node) = node_identity(user) else {
            return no("");
        };
        if node.is_empty() {
            info!(user = %user.name, "NODE DENY: unknown node");
            return no(format!("unknown node for user {:?}", user.name));
        }
        let subdivided = if req.resource.is_empty() {
            None
        } else {
            self.subdivided(node, req)
        };
        let Some(decision) = subdivided else {
            // k8s: the static rules decide the rest, without a log line.
            return if node_rules_allow(req.verb, req.api_group, req.resource, req.subresource) {
                NodeDecision::Allow
            } else {
                no("")
            };
        };
        if !decision.is_allowed() {
            // k8s: klog.V(2) "NODE DENY".
            info!(
                node,
                verb = req.verb,
                group = req.api_group,
                resource = req.resource,
                subresource = req.subresource,
                namespace = req.namespace,
                name = req.name(),
                reason = decision.reason().unwrap_or_default(),
                "NODE DENY"
            );
        }
        decision
    }

    /// The resources upstream judges by the graph or by name; `None` for the rest.
    fn subdivided(&self, node: &str, req: &NodeRequest) -> Option<NodeDecision> {
        Some(match (req.api_group, req.resource) {
            ("", "secrets") => self.read_namespaced(node, VertexType::Secret, req),
            ("", "configmaps") => self.read_namespaced(node, VertexType::ConfigMap, req),
            ("", "persistentvolumeclaims") if req.subresource == "status" => {
                self.status_update(node, VertexType::Pvc, req)
            }
            ("", "persistentvolumeclaims") => self.get(node, VertexType::Pvc, req),
            ("", "persistentvolumes") => self.get(node, VertexType::Pv, req),
            ("storage.k8s.io", "volumeattachments") => {
                self.get(node, VertexType::VolumeAttachment, req)
            }
            ("", "serviceaccounts") => self.create_token(node, req),
            ("coordination.k8s.io", "leases") => lease(node, req),
            ("storage.k8s.io", "csinodes") => csinode(node, req),
            ("", "nodes") => return node_object(node, req),
            ("", "pods") => return self.pod(node, req),
            _ => return None,
        })
    }

    /// k8s: authorizeStatusUpdate.
    fn status_update(&self, node: &str, t: VertexType, req: &NodeRequest) -> NodeDecision {
        if !matches!(req.verb, "update" | "patch") {
            return no("can only get/update/patch this type");
        }
        if req.subresource != "status" {
            return no("can only update status subresource");
        }
        self.related(node, t, req)
    }

    /// k8s: authorizeGet.
    fn get(&self, node: &str, t: VertexType, req: &NodeRequest) -> NodeDecision {
        if req.verb != "get" {
            return no("can only get individual resources of this type");
        }
        if !req.subresource.is_empty() {
            return no("cannot get subresource");
        }
        self.related(node, t, req)
    }

    /// k8s: authorizeReadNamespacedObject: get, and list/watch of one object by name.
    fn read_namespaced(&self, node: &str, t: VertexType, req: &NodeRequest) -> NodeDecision {
        if !matches!(req.verb, "get" | "list" | "watch") {
            return no("can only read resources of this type");
        }
        if !req.subresource.is_empty() {
            return no("cannot read subresource");
        }
        if req.namespace.is_empty() {
            return no("can only read namespaced object of this type");
        }
        self.related(node, t, req)
    }

    /// k8s: NodeAuthorizer.authorize: a path from the object to the node.
    fn related(&self, node: &str, t: VertexType, req: &NodeRequest) -> NodeDecision {
        let name = req.name();
        if name.is_empty() {
            return no("No Object name found");
        }
        if self.graph.has_path(node, t, req.namespace, name) {
            NodeDecision::Allow
        } else {
            no_relationship(node)
        }
    }

    /// k8s: authorizeCreateToken.
    fn create_token(&self, node: &str, req: &NodeRequest) -> NodeDecision {
        if req.verb != "create" || req.name.is_empty() {
            return no("can only create tokens for individual service accounts");
        }
        if req.subresource != "token" {
            return no("can only create token subresource of serviceaccount");
        }
        if self
            .graph
            .has_path(node, VertexType::ServiceAccount, req.namespace, req.name)
        {
            NodeDecision::Allow
        } else {
            no_relationship(node)
        }
    }

    /// k8s: authorizePod.
    fn pod(&self, node: &str, req: &NodeRequest) -> Option<NodeDecision> {
        let allow = Some(NodeDecision::Allow);
        match (req.subresource, req.verb) {
            ("", "get") => Some(self.get(node, VertexType::Pod, req)),
            ("", "list" | "watch") => {
                if req.field_selector_node_name == Some(node) {
                    allow
                } else if !req.name().is_empty() {
                    Some(self.related(node, VertexType::Pod, req))
                } else {
                    Some(no(
                        "can only list/watch pods with spec.nodeName field selector",
                    ))
                }
            }
            // Mirror pods, pod status and evictions: NodeRestriction limits them to pods
            // bound to the node.
            ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
                allow
            }
            _ => Some(no("")),
        }
    }
}

/// k8s: authorizeLease.
fn lease(node: &str, req: &NodeRequest) -> NodeDecision {
    if !matches!(req.verb, "get" | "create" | "update" | "patch" | "delete") {
        return no("can only get, create, update, patch, or delete a node lease");
    }
    if req.namespace != NODE_LEASE_NAMESPACE {
        return no(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    // The name of a create is not known here: NodeRestriction checks it.
    if req.verb != "create" && req.name != node {
        return no("can only access node lease with the same name as the requesting node");
    }
    NodeDecision::Allow
}

/// k8s: authorizeCSINode.
fn csinode(node: &str, req: &NodeRequest) -> NodeDecision {
    if !matches!(req.verb, "get" | "create" | "update" | "patch" | "delete") {
        return no("can only get, create, update, patch, or delete a CSINode");
    }
    if !req.subresource.is_empty() {
        return no("cannot authorize CSINode subresources");
    }
    if req.verb != "create" && req.name != node {
        return no("can only access CSINode with the same name as the requesting node");
    }
    NodeDecision::Allow
}

/// k8s: authorizeNode: its own Node only for reads; writes are NodeRestriction's to limit.
fn node_object(node: &str, req: &NodeRequest) -> Option<NodeDecision> {
    let decision = match (req.subresource, req.verb) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => NodeDecision::Allow,
        ("", "get" | "list" | "watch") => match req.name() {
            n if n == node => NodeDecision::Allow,
            "" => no(format!(
                "node '{node}' cannot read all nodes, only its own Node object"
            )),
            other => no(format!(
                "node '{node}' cannot read '{other}', only its own Node object"
            )),
        },
        _ => no(""),
    };
    Some(decision)
}
