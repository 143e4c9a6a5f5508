//! Who makes a request, and what they may do.
//!
//! Authentication (TLS client certificates, bearer tokens) belongs to the HTTP host: it turns a
//! connection into a [`UserInfo`]. Authorization and admission belong to the apiserver core, so
//! that every request — from kubectl, an in-process controller or a simulated component — is
//! judged by the same code under the identity upstream gives its sender. This module is
//! sans-IO: it builds without the `server` feature.

pub mod authorizer;
pub mod node;
pub mod rbac;
pub mod request_info;
pub mod serviceaccount;
pub mod user;

pub use user::UserInfo;
