//! The Node authorizer and the NodeRestriction admission plugin: a kubelet (`system:node:<name>`
//! in `system:nodes`) may change only its own Node, Lease and the status of pods bound to it,
//! and read only the Secrets, ConfigMaps and volumes of its pods.
//!
//! k8s: plugin/pkg/auth/authorizer/node (graph.go, graph_populator.go, node_authorizer.go) and
//! plugin/pkg/admission/noderestriction/admission.go. Sans-IO: the graph is fed by the
//! apiserver's committed writes ([`Graph::apply`], [`Graph::remove`]) and answers from
//! deterministic maps only.

pub mod admission;
#[cfg(test)]
mod admission_tests;
pub mod authorizer;
#[cfg(test)]
mod authorizer_tests;
pub mod csr;
pub mod graph;
pub mod identity;
#[cfg(test)]
mod kubelet_tests;
pub mod refs;
pub mod rules;

pub use admission::{
    admit, lookups, Lookups, NoLookup, NodeAdmission, NodeLookup, Operation, Prefetched,
};
pub use authorizer::{NodeAuthorizer, NodeDecision, NodeRequest};
pub use graph::{Graph, VertexType};
pub use identity::node_identity;
