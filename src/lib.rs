//! gantry: a Kubernetes-compatible control plane whose components are sans-IO state machines,
//! run by production hosts (`gantry`) and by a deterministic simulator (`gantry-sim`).
//! See DESIGN.md for the layering.

pub mod api;
pub mod apiserver;
pub mod auth;
pub mod component;
pub mod controllers;
pub mod dns;
pub mod event_recorder;
#[cfg(feature = "server")]
pub mod host;
pub mod kubelet;
pub mod proxy;
pub mod scheduler;
pub mod store;
pub mod testkit;
pub mod time;
