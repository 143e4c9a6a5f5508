//! RBAC (k8s: plugin/pkg/auth/authorizer/rbac, pkg/apis/rbac, pkg/registry/rbac): the four
//! kinds' validation, rule matching, the authorizer over an index of the stored objects, the
//! bootstrap policy and escalation prevention. Sans-IO.

pub mod validation;
