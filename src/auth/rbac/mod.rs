//! RBAC (k8s: plugin/pkg/auth/authorizer/rbac, pkg/apis/rbac, pkg/registry/rbac): the four
//! kinds' validation, rule matching, the authorizer over an index of the stored objects, the
//! bootstrap policy and escalation prevention. Sans-IO.

pub mod validation;

pub mod aggregation;
pub mod attributes;
pub mod authorizer;
pub mod controller_policy;
pub mod covers;
pub mod escalation;
pub mod forbidden;
pub mod index;
pub mod policy;
pub mod rule;

pub use attributes::{Attributes, Decision};
pub use index::RbacIndex;
pub use rule::Rule;
